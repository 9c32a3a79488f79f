"""Evaluation metrics over a whole split (computed once all predictions are gathered).

- ``top1`` (single-label): share of images whose highest logit is the label;
- ``mAP`` (multi-label): mean over classes with at least one positive of the average precision;
- ``point_accuracy``: share of (image, class) pairs with ground truth whose predicted point, mapped back to the
  source image, lies inside a ground-truth object of that class: on its mask when the object has polygons,
  else inside its box. ImageNet-style: the image's class; COCO-style: every class present with an object.
- ``centre_point_accuracy``: the same for a model that always points at the image centre (the centre prior):
  the line a localisation claim has to clear.
- ``pred_is_background`` (single-label, where the manifest knows images' backgrounds): share of those images whose
  top-1 class is the class of their background. On a split whose backgrounds are independent of the class, a
  model that reads the object scores about chance here and a background classifier about 1.
The engine reports each of them for the val split and again for the background-shifted split.
"""
import numpy as np

from luab.geometry import point_on_object


def top1(logits, labels):
    return float((logits.argmax(axis=1) == labels).mean()) if len(labels) else float("nan")


def average_precision(scores, positives):
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.mean())


def mean_average_precision(logits, multi_hot):
    per_class = [average_precision(logits[:, c], multi_hot[:, c]) for c in range(multi_hot.shape[1])]
    per_class = [ap for ap in per_class if not np.isnan(ap)]
    return float(np.mean(per_class)) if per_class else float("nan")


def as_coco_object(box, polygons):
    """A manifest object (box [x0, y0, x1, y1], polygons (V, 2)) as COCO's (segmentation, bbox), same frame."""
    x0, y0, x1, y1 = box.tolist()
    return [vertices.ravel().tolist() for vertices in polygons], [x0, y0, x1 - x0, y1 - y0]


def point_accuracy(manifest, rows, points):
    """points (N, K, 2) in source-image fractions for manifest rows; nan when no row has ground truth."""
    hits = total = 0
    for row, row_points in zip(rows, points):
        boxes, classes, polygons = manifest.boxes_of(int(row))
        for slot_class in manifest.labels_of(int(row)):
            objects = [i for i, c in enumerate(classes) if c == slot_class]
            if not objects:
                continue
            x, y = row_points[slot_class if manifest.multi_label else 0].tolist()
            total += 1
            hits += any(point_on_object(x, y, *as_coco_object(boxes[i], polygons[i])) for i in objects)
    return hits / total if total else float("nan")


def pred_is_background(logits, backgrounds):
    known = backgrounds >= 0
    return float((logits[known].argmax(axis=1) == backgrounds[known]).mean()) if known.any() else float("nan")


def split_metrics(manifest, rows, logits, points):
    """The metrics of one split: top1 (and pred_is_background) or mAP, point_accuracy and centre_point_accuracy."""
    rows = np.asarray(rows)
    if manifest.multi_label:
        metrics = {"mAP": mean_average_precision(logits, manifest.label[rows])}
    else:
        metrics = {"top1": top1(logits, manifest.label[rows])}
        if (manifest.background[rows] >= 0).any():
            metrics["pred_is_background"] = pred_is_background(logits, manifest.background[rows])
    metrics["point_accuracy"] = point_accuracy(manifest, rows, points)
    metrics["centre_point_accuracy"] = point_accuracy(manifest, rows, np.full_like(points, 0.5))
    return metrics
