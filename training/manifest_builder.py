"""Build a training manifest (training/ml/manifest.py) from the database: the approved work of chosen batches.

Labels are the dataset's own (ImageNet-style: the image's class; COCO-style: the categories of its ground-truth
objects), so a model trained with and without byproducts sees the same labels. Point targets (luab/targets.py) come
only from APPROVED assignments of the chosen batches:

- ImageNet-style: the first click (``selected_record[0]``) of every record that ended selected, averaged over
  the records (one per worker session), as the released ImageNet-AB loader does; weight 1, or 0 without any.
- COCO-style: each category's final icon position, averaged over workers. ``icons="replay"`` (default) takes
  ``CocoRecord.final_positions``, the result of replaying adds, moves and removes; ``icons="adds_only"`` replays
  only the adds (the released COCO-AB loader's reading). Icons of categories the image does not contain are
  dropped (the point slot of an absent class has no meaning).

Train images without byproducts stay in the manifest with weight 0; val and shifted images carry their
ground-truth boxes and polygons (as fractions of the image) for point localisation accuracy, and ImageNet-style
images whose import said which class's background they show (``meta["background"]``) carry it, for the share of
predictions that follow the background.

Paper scale (1.28M ImageNet images, 2.56M records) is built by streaming: a handful of queries whatever the size,
each read through a server-side cursor in chunks (``.iterator(chunk_size=CHUNK_SIZE)``), the chunks written
straight into the manifest's preallocated arrays. Only val/shifted images' boxes are read, and memory does not
grow with the dataset beyond the arrays themselves.
"""
import logging
import posixpath
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connections
from django.db.models import Count, Max, Q
from django.db.models.functions import Length

from annotator.models import Assignment, CocoRecord, Dataset, GroundTruthObject, ImageNetRecord, Split
from luab.actions import replay_actions
from luab.targets import first_click, icon_points
from training.ml import manifest as manifest_module
from training.pseudo_labels import confident_labels

logger = logging.getLogger(__name__)

ICON_SEMANTICS = ("replay", "adds_only")
CHUNK_SIZE = 5000  # rows per server-side cursor fetch, and per vectorised write into the arrays
EVALUATED_SPLITS = (Split.VAL, Split.SHIFTED)  # the splits whose ground-truth boxes the manifest carries


class ManifestBuildError(ValueError):
    """The chosen data cannot make a manifest; the message names the field and why."""


def image_locator():
    """file name -> absolute local path of the image, or s3://bucket/key when images live in object storage."""
    try:
        root = Path(default_storage.path("")).resolve()
    except NotImplementedError:  # object storage (django-storages S3): bucket and key under its location
        location, bucket = default_storage.location, default_storage.bucket_name
        return lambda name: f"s3://{bucket}/{posixpath.join(location, name) if location else name}"
    return lambda name: str(root / name)


def chunks(rows, size):
    """Lists of up to size rows of an iterator."""
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ManifestBuilder:
    """Fills a manifest's arrays from the database, one streamed query per kind of row."""

    def __init__(self, dataset, batches, icons, progress=None, pseudo_label_threshold=None, single_label=False):
        if icons not in ICON_SEMANTICS:
            raise ManifestBuildError(f"icons: {icons!r} is not one of {', '.join(ICON_SEMANTICS)}")
        self.dataset, self.batches, self.icons = dataset, batches, icons
        self.coco = dataset.kind == "coco"
        if single_label and not self.coco:
            raise ManifestBuildError(f"method: scl needs a COCO-style dataset; {dataset.name} is {dataset.kind}-style")
        self.single_label = single_label
        self.progress = progress
        self.categories = list(dataset.categories.order_by("index").values_list("key", "index", "name"))
        if not self.categories:
            raise ManifestBuildError(f"dataset: {dataset.name} has no categories")
        indexes = [index for _, index, _ in self.categories]
        if indexes != list(range(len(indexes))):
            raise ManifestBuildError(f"categories: indexes of dataset {dataset.name} are not 0..{len(indexes) - 1}")
        self.slot_of_key = {key: index for key, index, _ in self.categories}
        self.pseudo_label_threshold = pseudo_label_threshold
        self.pseudo = {} if pseudo_label_threshold is None else confident_labels(dataset, pseudo_label_threshold)
        self.pseudo_rows = []

    def included(self, prefix=""):
        """The images the manifest holds: ImageNet-style ones without a label cannot be trained on, unless the
        active model gave them a confident pseudo-label."""
        if self.coco:
            return Q()
        labelled = Q(**{f"{prefix}label__isnull": False})
        if self.pseudo:
            labelled |= Q(**{f"{prefix}id__in": list(self.pseudo)})
        return labelled

    def read(self, step, rows, total):
        """Chunks of a streamed query, reporting "done of total" rows of the step to progress after each."""
        done = 0
        if connections[rows.db].vendor == "sqlite":
            # An open SQLite read would deadlock with the job's heartbeat writes; the embedded set-up is small.
            streamed = iter(list(rows))
        else:
            streamed = rows.iterator(chunk_size=CHUNK_SIZE)  # a server-side cursor on PostgreSQL
        for chunk in chunks(streamed, CHUNK_SIZE):
            yield chunk
            done += len(chunk)
            if self.progress is not None:
                self.progress(step, done, total)

    def build(self):
        dataset = self.dataset
        counts = dataset.images.aggregate(
            all=Count("id"), images=Count("id", filter=self.included()),
            train=Count("id", filter=self.included() & Q(split=Split.TRAIN)), longest_name=Max(Length("file")),
        )
        if not counts["train"]:
            raise ManifestBuildError(f"dataset: {dataset.name} has no train images")
        if counts["all"] > counts["images"]:
            logger.warning("%s: %d images without a label left out", dataset.name, counts["all"] - counts["images"])
        n, c = counts["images"], len(self.categories)
        k = c if self.coco else 1
        locate = image_locator()
        self.image = np.empty(n, f"<U{len(locate('x' * counts['longest_name']))}")
        self.split = np.empty(n, f"<U{max(len(split) for split in manifest_module.SPLITS)}")
        self.label = np.zeros((n, c), np.uint8) if self.coco else np.zeros(n, np.int64)
        self.image_ids = np.empty(n, np.int64)
        self.background = np.full(n, -1, np.int64)  # the class whose background an image shows, -1 unknown
        self._read_images(n, locate)
        self._index_rows()
        if self.coco:
            self._read_coco_labels()
            if self.single_label:
                self._single_label_coco()
            self._pseudo_label_coco()
        n = len(self.image)
        point_sum, point_count = np.zeros((n, k, 2)), np.zeros((n, k), np.int64)
        if self.coco:
            self._read_coco_points(point_sum, point_count)
        else:
            self._read_imagenet_points(point_sum, point_count)
        has_point = point_count > 0
        if self.coco:
            has_point &= self.label.astype(bool)  # an icon of a class the image does not contain is no target
        has_point[self.pseudo_rows] = False  # a pseudo-label's class has no collected point
        point = np.full((n, k, 2), 0.5, np.float32)
        point[has_point] = point_sum[has_point] / point_count[has_point][:, None]
        point_weight = has_point.astype(np.float32)
        del point_sum, point_count
        boxes = self._read_boxes()
        source = {
            "dataset": dataset.name, "kind": dataset.kind, "batches": sorted(batch.name for batch in self.batches),
            "icons": self.icons if self.coco else None,
            "train_with_points": int(np.count_nonzero(has_point.any(axis=1) & (self.split == Split.TRAIN))),
        }
        if self.single_label:
            source["train_labels"] = "first icon (one label per image)"
        if self.pseudo_label_threshold is not None:
            source.update(pseudo_labelled_rows=sorted(self.pseudo_rows),
                          pseudo_label_threshold=self.pseudo_label_threshold,
                          pseudo_label_model=dataset.active_model_version)
        return manifest_module.Manifest(
            kind=dataset.kind, class_names=[name for _, _, name in self.categories], image=self.image,
            split=self.split, label=self.label, point=point, point_weight=point_weight, background=self.background,
            source=source, **boxes,
        )

    def _index_rows(self):
        self._rows_by_id = np.argsort(self.image_ids)
        self._sorted_ids = self.image_ids[self._rows_by_id]

    def rows_of(self, image_ids):
        """(manifest rows, mask of the ids that have one) of an array of image ids."""
        image_ids = np.asarray(image_ids, np.int64)
        at = np.minimum(np.searchsorted(self._sorted_ids, image_ids), len(self._sorted_ids) - 1)
        found = self._sorted_ids[at] == image_ids
        return self._rows_by_id[at[found]], found

    def _read_images(self, n, locate):
        fields = ["id", "file", "split"] + ([] if self.coco else ["label__index", "meta__background"])
        # Sliced to the count: an image imported meanwhile waits for the next snapshot.
        rows = self.dataset.images.filter(self.included()).order_by("split", "key").values_list(*fields)[:n]
        start = 0
        for chunk in self.read("images", rows, n):
            end = start + len(chunk)
            columns = list(zip(*chunk))
            self.image_ids[start:end] = columns[0]
            self.image[start:end] = [locate(name) for name in columns[1]]
            self.split[start:end] = columns[2]
            if not self.coco:
                labels = columns[3]
                if self.pseudo:  # an unlabelled image here has a confident pseudo-label (included())
                    self.pseudo_rows += [start + i for i, label in enumerate(labels) if label is None]
                    labels = [self.pseudo[id_][0] if label is None else label for id_, label in zip(columns[0], labels)]
                self.label[start:end] = labels
                self.background[start:end] = [self.slot_of_key.get(key, -1) if isinstance(key, str) else -1
                                              for key in columns[4]]
            start = end
        if start < n:  # images deleted meanwhile
            self.image, self.split, self.label, self.image_ids, self.background = (
                self.image[:start], self.split[:start], self.label[:start], self.image_ids[:start],
                self.background[:start],
            )
        unknown = set(np.unique(self.split).tolist()) - set(manifest_module.SPLITS)
        if unknown:
            raise ManifestBuildError(f"images: split {', '.join(sorted(unknown))} is not one of "
                                     f"{', '.join(manifest_module.SPLITS)}")

    def _approved(self, model):
        return model.objects.filter(
            image__dataset=self.dataset, image__split=Split.TRAIN, assignment__state=Assignment.State.APPROVED,
            assignment__hit__batch__in=[batch.pk for batch in self.batches],
        )

    def _accumulate(self, point_sum, point_count, image_ids, slots, xy):
        rows, found = self.rows_of(image_ids)
        slots, xy = np.asarray(slots, np.int64)[found], np.asarray(xy, np.float64).reshape(-1, 2)[found]
        np.add.at(point_sum, (rows, slots), xy)
        np.add.at(point_count, (rows, slots), 1)

    def _read_imagenet_points(self, point_sum, point_count):
        records = self._approved(ImageNetRecord).filter(selected=True).values_list("image_id", "selected_record")
        for chunk in self.read("byproducts", records, records.count()):
            image_ids, xy = [], []
            for image_id, selected_record in chunk:
                click = first_click(selected_record)
                if click is not None:
                    image_ids.append(image_id)
                    xy.append((click["x"], click["y"]))
            self._accumulate(point_sum, point_count, image_ids, [0] * len(image_ids), xy)

    def _read_coco_labels(self):
        objects = GroundTruthObject.objects.filter(image__dataset=self.dataset).values_list("image_id",
                                                                                            "category__index")
        for chunk in self.read("labels", objects, objects.count()):
            image_ids, classes = zip(*chunk)
            rows, found = self.rows_of(image_ids)
            self.label[rows, np.asarray(classes, np.int64)[found]] = 1

    def _single_label_coco(self):
        """Method scl (seed 003, one label per image): a train image's only label is the class of the first icon
        added in its first approved record (by assignment) that is still on it at the end; train images without
        an approved icon are left out."""
        records = self._approved(CocoRecord).order_by("assignment_id", "pk").values_list(
            "image_id", "final_positions", "action_histories"
        )
        first = {}
        for chunk in self.read("labels", records, records.count()):
            for image_id, final_positions, action_histories in chunk:
                if image_id in first or not final_positions:
                    continue
                added = [action.get("iconType") for action in action_histories if action.get("actionType") == "add"]
                key = str(next((key for key in added if key in final_positions), sorted(final_positions)[0]))
                if key in self.slot_of_key:
                    first[image_id] = self.slot_of_key[key]
        train = self.split == Split.TRAIN
        self.label[train] = 0
        rows, found = self.rows_of(list(first))
        self.label[rows, np.asarray(list(first.values()), np.int64)[found]] = 1
        keep = ~train | self.label.any(axis=1)
        if not keep.all():
            logger.warning("%s: %d train images without an approved icon left out (method scl)",
                           self.dataset.name, np.count_nonzero(~keep))
            self.image, self.split, self.label, self.image_ids, self.background = (
                array[keep] for array in (self.image, self.split, self.label, self.image_ids, self.background)
            )
            self._index_rows()

    def _pseudo_label_coco(self):
        """Train images without any ground-truth object take the active model's confident classes."""
        if not self.pseudo:
            return
        rows, found = self.rows_of(list(self.pseudo))
        classes = [labels for labels, hit in zip(self.pseudo.values(), found) if hit]
        for row, labels in zip(rows.tolist(), classes):
            if self.split[row] == Split.TRAIN and not self.label[row].any():
                self.label[row, labels] = 1
                self.pseudo_rows.append(row)

    def _read_coco_points(self, point_sum, point_count):
        adds_only = self.icons == "adds_only"
        fields = ["image_id", "action_histories" if adds_only else "final_positions"]
        records = self._approved(CocoRecord).values_list(*fields)
        for chunk in self.read("byproducts", records, records.count()):
            image_ids, slots, xy = [], [], []
            for image_id, positions in chunk:
                if adds_only:
                    positions = replay_actions(positions, adds_only=True, strict=False)
                for key, point in icon_points(positions).items():
                    slot = self.slot_of_key.get(key)
                    if slot is not None:
                        image_ids.append(image_id)
                        slots.append(slot)
                        xy.append(point)
            self._accumulate(point_sum, point_count, image_ids, slots, xy)

    def _read_boxes(self):
        """The ground truth of val/shifted images in manifest order: box arrays and their polygons as fractions."""
        objects = GroundTruthObject.objects.filter(
            self.included("image__"), image__split__in=EVALUATED_SPLITS, image__dataset=self.dataset
        ).order_by("image__split", "image__key", "id").values_list(
            "image_id", "category__index", "bbox", "segmentation", "image__width", "image__height",
        )
        box, box_image, box_class, polygon_xy, polygon_start, polygon_box = [], [], [], [], [0], []
        for chunk in self.read("boxes", objects, objects.count()):
            rows, _ = self.rows_of([row[0] for row in chunk])
            for row, (_, index, bbox, segmentation, width, height) in zip(rows.tolist(), chunk):
                x, y, w, h = bbox
                if isinstance(segmentation, list):
                    for polygon in segmentation:
                        if len(polygon) >= 6:
                            vertices = np.asarray(polygon, np.float64).reshape(-1, 2) / (width, height)
                            polygon_xy.append(vertices.astype(np.float32))
                            polygon_start.append(polygon_start[-1] + len(vertices))
                            polygon_box.append(len(box))
                box.append([x / width, y / height, (x + w) / width, (y + h) / height])
                box_image.append(row)
                box_class.append(index)
        return {
            "box": np.asarray(box, np.float32).reshape(-1, 4), "box_image": np.asarray(box_image, np.int64),
            "box_class": np.asarray(box_class, np.int64),
            "polygon_xy": np.concatenate(polygon_xy) if polygon_xy else np.zeros((0, 2), np.float32),
            "polygon_start": np.asarray(polygon_start, np.int64), "polygon_box": np.asarray(polygon_box, np.int64),
        }


def manifest_for(dataset, batches=None, icons="replay", progress=None, pseudo_label_threshold=None,
                 single_label=False):
    """The Manifest of a dataset: train images with byproduct targets of the batches' approved work, val/shifted
    with ground truth. batches: a queryset or list of the dataset's batches (default: all of them).
    progress(step, done, total) is called as each step ("images", "byproducts", "boxes") reads its rows.
    pseudo_label_threshold: train images without labels get the active model's confident ones (pseudo_labels.py).
    single_label (COCO-style, method scl): a train image's only label is its first icon's class; train images
    without an approved icon are left out."""
    batches = list(dataset.batches.all() if batches is None else batches)
    foreign = [batch.name for batch in batches if batch.dataset_id != dataset.id]
    if foreign:
        raise ManifestBuildError(f"batches: {', '.join(foreign)} do not belong to dataset {dataset.name}")
    return ManifestBuilder(dataset, batches, icons, progress, pseudo_label_threshold, single_label).build()


def build_manifest(dataset, batches=None, icons="replay", out_dir=None, progress=None, pseudo_label_threshold=None,
                   single_label=False):
    """Write the dataset's manifest under out_dir (default VAR_DIR/manifests); returns its path."""
    manifest = manifest_for(dataset, batches, icons, progress, pseudo_label_threshold, single_label)
    return manifest_module.write(manifest, out_dir or Path(settings.VAR_DIR) / "manifests")


def dataset_by_name(name):
    try:
        return Dataset.objects.get(name=name)
    except Dataset.DoesNotExist:
        raise ManifestBuildError(f"dataset: no dataset named {name!r}") from None
