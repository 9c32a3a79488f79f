"""Build a training manifest (training/ml/manifest.py) from the database: the approved work of chosen batches.

Labels are the dataset's own (ImageNet-style: the image's class; COCO-style: the categories of its ground-truth
objects), so a model trained with and without byproducts sees the same labels. Point targets come only from
APPROVED assignments of the chosen batches:

- ImageNet-style: the first click (``selected_record[0]``) of every record that ended selected, averaged over
  the records (one per worker session), as the released ImageNet-AB loader does; weight 1, or 0 without any.
- COCO-style: each category's final icon position, averaged over workers. ``icons="replay"`` (default) takes
  ``CocoRecord.final_positions``, the result of replaying adds, moves and removes; ``icons="adds_only"`` replays
  only the adds (the released COCO-AB loader's reading). Icons of categories the image does not contain are
  dropped (the point slot of an absent class has no meaning).

Train images without byproducts stay in the manifest with weight 0; val and shifted images carry their
ground-truth boxes and polygons (as fractions of the image) for point localisation accuracy.
"""
import logging
import posixpath
from collections import defaultdict
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from annotator.models import Assignment, CocoRecord, Dataset, GroundTruthObject, ImageNetRecord, Split
from annotator.replay import replay_actions
from training.ml import manifest as manifest_module
from training.pseudo_labels import confident_labels

logger = logging.getLogger(__name__)

ICON_SEMANTICS = ("replay", "adds_only")


class ManifestBuildError(ValueError):
    """The chosen data cannot make a manifest; the message names the field and why."""


def image_location(image):
    """Absolute local path of the image file, or s3://bucket/key when it lives in object storage."""
    try:
        return str(Path(default_storage.path(image.file.name)).resolve())
    except NotImplementedError:  # object storage (django-storages S3): bucket and key under its location
        key = posixpath.join(default_storage.location, image.file.name) if default_storage.location else image.file.name
        return f"s3://{default_storage.bucket_name}/{key}"


def imagenet_points(images, batches):
    """{image id: (x, y)}: first click of each selecting record of approved work, averaged over records."""
    records = ImageNetRecord.objects.filter(
        image__in=images, selected=True, assignment__state=Assignment.State.APPROVED,
        assignment__hit__batch__in=batches,
    ).values_list("image_id", "selected_record")
    clicks = defaultdict(list)
    for image_id, selected_record in records:
        # A keyboard selection (usingKeyboard) has no point: the first click with one is the target.
        click = next((click for click in selected_record if "x" in click), None)
        if click is not None:
            clicks[image_id].append((click["x"], click["y"]))
    return {image_id: _mean(points) for image_id, points in clicks.items()}


def coco_points(images, batches, icons="replay"):
    """{image id: {category key: (x, y)}}: final icon positions of approved work, averaged over workers."""
    if icons not in ICON_SEMANTICS:
        raise ManifestBuildError(f"icons: {icons!r} is not one of {', '.join(ICON_SEMANTICS)}")
    records = CocoRecord.objects.filter(
        image__in=images, assignment__state=Assignment.State.APPROVED, assignment__hit__batch__in=batches,
    ).values_list("image_id", "final_positions", "action_histories")
    positions = defaultdict(lambda: defaultdict(list))
    for image_id, final_positions, action_histories in records:
        if icons == "adds_only":
            final_positions = replay_actions(action_histories, adds_only=True, strict=False)
        for key, point in final_positions.items():
            positions[image_id][str(key)].append((point["x"], point["y"]))
    return {
        image_id: {key: _mean(points) for key, points in by_key.items()} for image_id, by_key in positions.items()
    }


def first_icon_labels(images, batches):
    """{image id: category key} for method scl (seed 003: one label per image): the first icon added in the first
    approved record (by assignment) of the image that is still on it at the end."""
    records = CocoRecord.objects.filter(
        image__in=images, assignment__state=Assignment.State.APPROVED, assignment__hit__batch__in=batches,
    ).order_by("assignment_id", "pk").values_list("image_id", "final_positions", "action_histories")
    labels = {}
    for image_id, final_positions, action_histories in records:
        if image_id in labels or not final_positions:
            continue
        added = [action.get("iconType") for action in action_histories if action.get("actionType") == "add"]
        labels[image_id] = str(next((key for key in added if key in final_positions), sorted(final_positions)[0]))
    return labels


def _mean(points):
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def ground_truth(images):
    """{image id: [{"class": index, "box": [x0, y0, x1, y1], "polygons": [...]}]} as fractions of the image."""
    objects = GroundTruthObject.objects.filter(image__in=images).select_related("image", "category")
    by_image = defaultdict(list)
    for obj in objects.order_by("id"):
        width, height = obj.image.width, obj.image.height
        x, y, w, h = obj.bbox
        polygons = []
        if isinstance(obj.segmentation, list):
            polygons = [
                [value / (width if i % 2 == 0 else height) for i, value in enumerate(polygon)]
                for polygon in obj.segmentation if len(polygon) >= 6
            ]
        by_image[obj.image_id].append({
            "class": obj.category.index, "box": [x / width, y / height, (x + w) / width, (y + h) / height],
            "polygons": polygons,
        })
    return by_image


def manifest_for(dataset, batches=None, icons="replay", pseudo_label_threshold=None, single_label=False):
    """The Manifest of a dataset: train images with byproduct targets of the batches' approved work, val/shifted
    with ground truth. batches: a queryset or list of the dataset's batches (default: all of them).
    pseudo_label_threshold: train images without labels get the active model's confident ones (pseudo_labels.py).
    single_label (COCO-style, method scl): a train image's only label is its first icon's class
    (first_icon_labels); train images without an approved icon are left out."""
    batches = list(dataset.batches.all() if batches is None else batches)
    foreign = [batch.name for batch in batches if batch.dataset_id != dataset.id]
    if foreign:
        raise ManifestBuildError(f"batches: {', '.join(foreign)} do not belong to dataset {dataset.name}")
    categories = list(dataset.categories.order_by("index"))
    if not categories:
        raise ManifestBuildError(f"dataset: {dataset.name} has no categories")
    index_of_key = {category.key: category.index for category in categories}
    images = list(dataset.images.order_by("split", "key"))
    train_images = [image for image in images if image.split == Split.TRAIN]
    if not train_images:
        raise ManifestBuildError(f"dataset: {dataset.name} has no train images")
    objects = ground_truth(images)
    coco = dataset.kind == "coco"
    points = coco_points(train_images, batches, icons) if coco else imagenet_points(train_images, batches)
    if single_label and not coco:
        raise ManifestBuildError(f"method: scl needs a COCO-style dataset; {dataset.name} is {dataset.kind}-style")
    first_icons = first_icon_labels(train_images, batches) if single_label else None
    pseudo = {} if pseudo_label_threshold is None else confident_labels(dataset, pseudo_label_threshold)
    entries, unlabelled, pseudo_rows = [], 0, []
    for image in images:
        if image.id in pseudo and (coco and not objects.get(image.id) or not coco and image.label_id is None):
            pseudo_rows.append(len(entries))
            entries.append({"image": image_location(image), "split": image.split, "labels": pseudo[image.id]})
            continue
        if coco:
            labels = sorted({obj["class"] for obj in objects.get(image.id, [])})
            if first_icons is not None and image.split == Split.TRAIN:
                if image.id not in first_icons:
                    unlabelled += 1
                    continue
                labels = [index_of_key[first_icons[image.id]]]
            targets = {
                index_of_key[key]: (x, y, 1.0) for key, (x, y) in points.get(image.id, {}).items()
                if index_of_key.get(key) in labels
            }
        else:
            if image.label_id is None:
                unlabelled += 1
                continue
            labels = [image.label.index]
            targets = {0: (*points[image.id], 1.0)} if image.id in points else {}
        entry = {"image": image_location(image), "split": image.split, "labels": labels, "points": targets}
        if image.split != Split.TRAIN:
            entry["boxes"] = objects.get(image.id, [])
        entries.append(entry)
    if unlabelled:
        logger.warning("%s: %d images without a label left out", dataset.name, unlabelled)
    source = {
        "dataset": dataset.name, "kind": dataset.kind, "batches": sorted(batch.name for batch in batches),
        "icons": icons if coco else None,
        "train_with_points": sum(1 for e in entries if e["split"] == Split.TRAIN and e.get("points")),
    }
    if single_label:
        source["train_labels"] = "first icon (one label per image)"
    if pseudo_label_threshold is not None:
        source.update(pseudo_labelled_rows=pseudo_rows, pseudo_label_threshold=pseudo_label_threshold,
                      pseudo_label_model=dataset.active_model_version)
    return manifest_module.build(dataset.kind, [c.name for c in categories], entries, source=source)


def build_manifest(dataset, batches=None, icons="replay", out_dir=None, pseudo_label_threshold=None,
                   single_label=False):
    """Write the dataset's manifest under out_dir (default VAR_DIR/manifests); returns its path."""
    manifest = manifest_for(dataset, batches, icons, pseudo_label_threshold, single_label)
    return manifest_module.write(manifest, out_dir or Path(settings.VAR_DIR) / "manifests")


def dataset_by_name(name):
    try:
        return Dataset.objects.get(name=name)
    except Dataset.DoesNotExist:
        raise ManifestBuildError(f"dataset: no dataset named {name!r}") from None
