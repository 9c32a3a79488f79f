"""Weakly-supervised object localisation metrics of a classifier's class maps (seed 002, after Choe et al.'s
evaluation protocol).

Every scored instance is one (image, class) pair with ground truth: the image's class (ImageNet-style) or each
class with objects in the image (COCO-style). Its map (``class_maps``) is upsampled to the evaluation frame (the
centre crop the model saw), min-max normalised to [0, 1] and thresholded at every ``CAM_THRESHOLDS`` value:

- ``BoxAcc(tau, delta)``: share of instances for which some box around a connected component (8-connected) of
  ``map >= tau`` has IoU >= delta with some ground-truth box of the class. ``MaxBoxAccV2(delta)`` is its maximum
  over tau (the best threshold per delta), reported for delta 0.3, 0.5 and 0.7 and averaged (``maxboxacc_v2``).
- ``PxAP``: average precision of the pixels against the masks (the union of the class's polygons), over all
  pixels of all instances whose every object has a mask: precision and recall of ``map >= tau`` for tau from
  1 down to 0, summed as sum_i P_i (R_i - R_{i-1}).

Seed 001's localisation metric of the same maps, per instance and attention threshold t in 0.6, 0.7, 0.8, 0.9:
``IoA-P = |pred & gt| / |pred|`` with pred = ``map >= t`` and gt the mask (the boxes where the objects have no
polygons); ``ioap`` is its mean. ``map_loc``: the mean over t of the mean over classes of the average precision of
the class's logits where an image counts as a hit only when it has the class AND IoA-P >= 0.5 (precision at each
hit summed over the number of images with the class, as detection AP does).

The threshold curves (BoxAcc per delta, precision and recall of PxAP) are returned with the numbers. Sums are
kept per threshold so shards of a split (one per process) add up before the numbers are taken.
"""
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

CAM_THRESHOLDS = np.arange(100) / 100  # 0.00, 0.01, ..., 0.99
PIXEL_THRESHOLDS = np.append(CAM_THRESHOLDS, 1.0)  # PxAP also counts the map's peak alone
IOU_THRESHOLDS = (0.3, 0.5, 0.7)
ATTENTION_THRESHOLDS = (0.6, 0.7, 0.8, 0.9)
IOA_HIT = 0.5
CAM_SOURCES = ("auto", "classifier", "attention")
# Side of the square evaluation frame the maps are upsampled to: 8x a 7x7 feature map; box edges fall on 1/56ths
# (labelling 100 thresholded 224x224 maps takes seconds per image on a CPU).
FRAME_SIZE = 56


def class_maps(model, output, source="auto"):
    """(B, S, h, w) localisation maps of a PointClassifier's output: S = classes, or 1 class-agnostic slot.

    source ``auto``: the method's own map (patch: its spatial logits; attentive: its attention scores; baseline and
    luab: the class activation map); ``classifier``: the class activation map (the classifier applied to every
    feature cell) for any method; ``attention``: attentive pooling's scores (method attentive only).
    """
    if source not in CAM_SOURCES:
        raise ValueError(f"cam: {source!r} is not one of {', '.join(CAM_SOURCES)}")
    if source == "attention" or (source == "auto" and "attention" in output):
        if "attention" not in output:
            raise ValueError(f"cam: 'attention' needs method attentive, not {model.method}")
        return output["attention"].float()
    if source == "auto" and "spatial_logits" in output:
        return output["spatial_logits"].float()
    grid = model.spatial_features(output["features"])
    return torch.einsum("bdhw,cd->bchw", grid.float(), model.classifier.weight.float())


def normalize_map(cam):
    """Min-max to [0, 1]; a flat map becomes all zeros."""
    low, high = cam.min(), cam.max()
    return (cam - low) / (high - low) if high > low else torch.zeros_like(cam)


def component_boxes(masks):
    """Boxes of every 8-connected component of each of (T, H, W) bool masks.

    Returns (level (N,) int64: which mask, boxes (N, 4) [x0, y0, x1, y1] as fractions of the frame, a pixel
    covering [x / W, (x + 1) / W]). Labels spread by 3x3 max-pooling within the mask, with pointer jumping (a
    pixel takes the label of the pixel its label names) so long components converge in few rounds.
    """
    levels, height, width = masks.shape
    if not masks.any():
        return torch.zeros(0, dtype=torch.int64), torch.zeros((0, 4))
    index = torch.arange(1, height * width + 1).view(1, height, width).expand_as(masks)
    labels = torch.where(masks, index, 0)
    zero = torch.zeros((levels, 1), dtype=labels.dtype)
    while True:
        # column 0 stands for the background, so label L names column L
        flat = torch.cat([zero, (neighbourhood_max(labels) * masks).reshape(levels, -1)], dim=1)
        for _ in range(3):
            flat = torch.gather(flat, 1, flat)
        grown = flat[:, 1:].view_as(labels)
        if torch.equal(grown, labels):
            break
        labels = grown
    level, y, x = torch.nonzero(masks, as_tuple=True)
    keys = level * (height * width + 1) + labels[level, y, x].long()
    unique_keys, component = torch.unique(keys, return_inverse=True)
    count = len(unique_keys)

    def reduce(values, how):
        start = torch.full((count,), height * width if how == "amin" else -1, dtype=torch.int64)
        return start.scatter_reduce(0, component, values, how)

    boxes = torch.stack([
        reduce(x, "amin") / width, reduce(y, "amin") / height,
        (reduce(x, "amax") + 1) / width, (reduce(y, "amax") + 1) / height,
    ], dim=1)
    return unique_keys // (height * width + 1), boxes


def neighbourhood_max(labels):
    """Max over each pixel's 3x3 neighbourhood of (T, H, W) labels (outside the frame counts as 0)."""
    padded = F.pad(labels, (1, 1, 1, 1))
    height, width = labels.shape[1:]
    rows = torch.maximum(torch.maximum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
    return torch.maximum(torch.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])[:, :height, :width]


def box_iou(boxes, others):
    """(N, 4) x (M, 4) -> (N, M) intersection over union."""
    top_left = torch.maximum(boxes[:, None, :2], others[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], others[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=-1)
    other_area = (others[:, 2:] - others[:, :2]).prod(dim=-1)
    return intersection / (area[:, None] + other_area[None, :] - intersection).clamp(min=1e-12)


def best_iou_per_threshold(cam, gt_boxes, thresholds=CAM_THRESHOLDS):
    """(T,) the best IoU of any component box of cam >= tau with any ground-truth box, per threshold tau.

    cam (H, W) normalised to [0, 1]; gt_boxes (G, 4) fractions of the cam's frame.
    """
    cam = torch.as_tensor(cam, dtype=torch.float32)
    masks = cam.unsqueeze(0) >= torch.as_tensor(thresholds, dtype=torch.float32).view(-1, 1, 1)
    level, boxes = component_boxes(masks)
    best = torch.zeros(len(thresholds))
    if len(boxes) and len(gt_boxes):
        ious = box_iou(boxes, torch.as_tensor(np.asarray(gt_boxes), dtype=torch.float32)).amax(dim=1)
        best = best.scatter_reduce(0, level, ious, "amax")
    return best.numpy()


def pixels_above(cam, mask, thresholds=PIXEL_THRESHOLDS):
    """(positives, negatives) (T,) counts of mask and non-mask pixels with cam >= tau, per threshold."""
    cam, mask = torch.as_tensor(cam, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.bool)
    above = cam.unsqueeze(0) >= torch.as_tensor(thresholds, dtype=torch.float32).view(-1, 1, 1)
    positives = (above & mask).flatten(1).sum(dim=1)
    negatives = (above & ~mask).flatten(1).sum(dim=1)
    return positives.numpy().astype(np.int64), negatives.numpy().astype(np.int64)


def pixel_average_precision(positives_above, negatives_above, total_positives):
    """PxAP and its curves from per-threshold counts (thresholds ascending, so recall falls along them)."""
    positives_above = np.asarray(positives_above, np.float64)
    negatives_above = np.asarray(negatives_above, np.float64)
    predicted = positives_above + negatives_above
    precision = np.divide(positives_above, predicted, out=np.zeros_like(predicted), where=predicted > 0)
    recall = positives_above / max(total_positives, 1)
    recall_gain = recall - np.append(recall[1:], 0.0)
    return float((precision * recall_gain).sum()), precision, recall


def intersection_over_predicted_area(cam, mask, thresholds=ATTENTION_THRESHOLDS):
    """(T,) IoA-P of cam >= t against the bool mask, per attention threshold; 0 where nothing is predicted."""
    cam, mask = torch.as_tensor(cam, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.bool)
    predicted = cam.unsqueeze(0) >= torch.as_tensor(thresholds, dtype=torch.float32).view(-1, 1, 1)
    area = predicted.flatten(1).sum(dim=1)
    overlap = (predicted & mask).flatten(1).sum(dim=1)
    return torch.where(area > 0, overlap / area.clamp(min=1), 0.0).numpy()


def localization_average_precision(logits, rows, instances, ioa):
    """map_loc (see the module docstring). logits (N, C) of the split's rows; instances [(row, class)] with
    ground truth and ioa (I, T) their IoA-P per attention threshold."""
    position = {int(row): i for i, row in enumerate(rows)}
    per_threshold = []
    for column in range(ioa.shape[1]):
        per_class = []
        for slot_class in sorted({c for _, c in instances}):
            hits = np.zeros(len(rows), bool)
            mine = [i for i, (_, c) in enumerate(instances) if c == slot_class]
            for i in mine:
                hits[position[instances[i][0]]] |= ioa[i, column] >= IOA_HIT
            order = np.argsort(-logits[:, slot_class], kind="stable")
            ranked = hits[order]
            precision_at_hit = np.cumsum(ranked)[ranked] / (np.flatnonzero(ranked) + 1)
            per_class.append(precision_at_hit.sum() / len(mine))
        per_threshold.append(np.mean(per_class))
    return float(np.mean(per_threshold))


def rasterize(polygons, size):
    """(size, size) bool mask of the union of polygons given as (V, 2) arrays of frame fractions."""
    canvas = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for vertices in polygons:
        draw.polygon([(float(x) * size, float(y) * size) for x, y in vertices], fill=1)
    return np.array(canvas, dtype=bool)


@dataclass
class LocalizationScores:
    """Per-threshold sums over the instances of one split (or one process's shard of it)."""

    box_hits: np.ndarray = field(
        default_factory=lambda: np.zeros((len(CAM_THRESHOLDS), len(IOU_THRESHOLDS)), np.int64)
    )
    box_instances: int = 0
    positives_above: np.ndarray = field(default_factory=lambda: np.zeros(len(PIXEL_THRESHOLDS), np.int64))
    negatives_above: np.ndarray = field(default_factory=lambda: np.zeros(len(PIXEL_THRESHOLDS), np.int64))
    mask_instances: int = 0
    instances: list = field(default_factory=list)  # (row, class) of each instance, for map_loc
    ioa: list = field(default_factory=list)  # (T,) IoA-P per instance

    def add(self, cam, gt_boxes, mask=None, instance=None):
        """One instance: cam (H, W) normalised, gt_boxes (G, 4) in its frame, mask (H, W) bool or None;
        instance (row, class) also scores IoA-P against the mask, or the boxes where there is none."""
        if instance is not None:
            region = mask if mask is not None else box_mask(gt_boxes, cam.shape[-1])
            self.instances.append(tuple(int(v) for v in instance))
            self.ioa.append(intersection_over_predicted_area(cam, region))
        best = best_iou_per_threshold(cam, gt_boxes)
        self.box_hits += best[:, None] >= np.asarray(IOU_THRESHOLDS)[None, :]
        self.box_instances += 1
        if mask is not None:
            positives, negatives = pixels_above(cam, mask)
            self.positives_above += positives
            self.negatives_above += negatives
            self.mask_instances += 1

    def __add__(self, other):
        return LocalizationScores(
            self.box_hits + other.box_hits, self.box_instances + other.box_instances,
            self.positives_above + other.positives_above, self.negatives_above + other.negatives_above,
            self.mask_instances + other.mask_instances, self.instances + other.instances, self.ioa + other.ioa,
        )

    def metrics(self, rows=None, logits=None):
        """{} without instances; else maxboxacc_iou30/50/70, maxboxacc_v2 (their mean), pxap (with masks), ioap
        and, given the split's rows and logits, map_loc; and "localization_curves": the threshold curves."""
        if not self.box_instances:
            return {}
        box_accuracy = self.box_hits / self.box_instances  # (T, D)
        results, curves = {}, {"thresholds": CAM_THRESHOLDS.round(2).tolist(), "box_accuracy": {}}
        for column, delta in enumerate(IOU_THRESHOLDS):
            results[f"maxboxacc_iou{round(delta * 100)}"] = float(box_accuracy[:, column].max())
            curves["box_accuracy"][str(delta)] = box_accuracy[:, column].round(4).tolist()
        results["maxboxacc_v2"] = float(np.mean([box_accuracy[:, c].max() for c in range(len(IOU_THRESHOLDS))]))
        if self.mask_instances:
            total = int(self.positives_above[0])
            pxap, precision, recall = pixel_average_precision(self.positives_above, self.negatives_above, total)
            results["pxap"] = pxap
            curves.update(
                pixel_thresholds=PIXEL_THRESHOLDS.round(2).tolist(), pixel_precision=precision.round(4).tolist(),
                pixel_recall=recall.round(4).tolist(),
            )
        if self.ioa:
            ioa = np.stack(self.ioa)
            results["ioap"] = float(ioa.mean())
            if logits is not None:
                results["map_loc"] = localization_average_precision(logits, rows, self.instances, ioa)
        results["localization_curves"] = curves
        return results


def instance_targets(manifest, row, crop, size):
    """[(class, gt boxes (G, 4) in the crop's frame, mask (size, size) or None)] of one manifest entry.

    Boxes are clipped to the crop (those left outside dropped); the mask exists when every object of the class
    has polygons. Instances without any box in the crop are skipped.
    """
    boxes, classes, polygons = manifest.boxes_of(int(row))
    targets = []
    for slot_class in manifest.labels_of(int(row)):
        objects = [i for i, c in enumerate(classes) if c == slot_class]
        if not objects:
            continue
        corners = np.stack([to_frame(crop, boxes[i].reshape(2, 2)).reshape(4) for i in objects])
        corners = np.concatenate([
            np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:]),
        ], axis=1).clip(0, 1)
        corners = corners[(corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])]
        if not len(corners):
            continue
        mask = None
        if all(polygons[i] for i in objects):
            mask = rasterize([to_frame(crop, v) for i in objects for v in polygons[i]], size)
        targets.append((slot_class, corners, mask))
    return targets


def box_mask(boxes, size):
    """(size, size) bool: the union of (G, 4) boxes given as frame fractions."""
    mask = np.zeros((size, size), bool)
    for x0, y0, x1, y1 in np.asarray(boxes):
        mask[int(round(y0 * size)):int(round(y1 * size)), int(round(x0 * size)):int(round(x1 * size))] = True
    return mask


def to_frame(crop, points):
    """(V, 2) source-image fractions -> fractions of the crop's frame (outside the crop: beyond [0, 1])."""
    return crop.apply_to_points(np.asarray(points, np.float32), np.ones(len(points), np.float32))[0]


def score_batch(scores, model, output, rows, crops, manifest, source="auto", size=FRAME_SIZE):
    """Add a batch's instances to scores: each instance's class map (its slot when maps are class-agnostic),
    upsampled bilinearly to size x size and normalised."""
    maps = class_maps(model, output, source)
    for position, (row, crop) in enumerate(zip(rows, crops)):
        for slot_class, gt_boxes, mask in instance_targets(manifest, row, crop, size):
            cam = maps[position, 0 if maps.shape[1] == 1 else slot_class]
            cam = F.interpolate(cam[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
            scores.add(normalize_map(cam.cpu()), gt_boxes, mask, instance=(row, slot_class))
