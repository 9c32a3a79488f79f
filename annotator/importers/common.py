"""What both importers share: the plan of what to write, file checks, and the one transactional write."""
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils.text import slugify
from tqdm import tqdm

from annotator import images as image_files
from annotator.models import Category, Dataset, GroundTruthObject, Image
from annotator.tasks import make_display_versions
from config.celery import send_on_commit

logger = logging.getLogger(__name__)

BULK_SIZE = 500


class DatasetImportError(ValueError):
    """Malformed input; the message names the file and the line or field."""


@dataclass
class PlannedCategory:
    key: str
    name: str
    synonyms: list = field(default_factory=list)
    definition: str = ""
    supercategory: str = ""


@dataclass
class PlannedObject:
    category_key: str
    bbox: list
    area: float
    segmentation: object = None
    iscrowd: bool = False
    source_id: int = None


@dataclass
class PlannedImage:
    key: str
    split: str
    path: Path  # the file on disk
    stored_name: str  # its name in storage, below images/
    width: int
    height: int
    label_key: str = None
    meta: dict = field(default_factory=dict)
    objects: list = field(default_factory=list)


@dataclass
class ImportSummary:
    dataset: Dataset
    images_created: int = 0
    images_skipped: int = 0
    objects_created: int = 0
    categories_created: int = 0
    objects_added_to_existing: int = 0

    def __str__(self):
        added = (f" ({self.objects_added_to_existing} of them added to images already there)"
                 if self.objects_added_to_existing else "")
        return (f"dataset {self.dataset.name}: {self.images_created} images imported, {self.images_skipped} already "
                f"there, {self.objects_created} objects{added}, {self.categories_created} new categories")


def check_dataset_name(name, kind):
    """The dataset's name must be a slug, and an existing dataset of that name must be of the same kind."""
    if slugify(name) != name:
        raise DatasetImportError(f"--name {name!r}: use letters, digits, '-' and '_' only (e.g. {slugify(name)!r})")
    existing = Dataset.objects.filter(name=name).first()
    if existing is not None and existing.kind != kind:
        raise DatasetImportError(f"--name {name!r}: that dataset exists and is {existing.kind}-style, not {kind}")
    return existing


def existing_image_keys(dataset):
    return set(dataset.images.values_list("key", flat=True)) if dataset else set()


def resolve_inside(root, relative, where):
    """root/relative, refusing absolute names, '..' and links that lead outside root (names `where` if not)."""
    parts = PurePosixPath(str(relative).replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or not parts.parts:
        raise DatasetImportError(f"{where}: file name {str(relative)!r} leaves the images folder")
    path = Path(root, *parts.parts)
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise DatasetImportError(f"{where}: {path} is a link to a file outside {root}")
    return path


def read_image_size(path, where):
    """Decode the whole file (so truncated or corrupt images are caught now); returns (width, height)."""
    if not path.is_file():
        raise DatasetImportError(f"{where}: image file {path} does not exist")
    try:
        decoded = image_files.decode(path.read_bytes())
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetImportError(f"{where}: cannot decode image {path} ({exc})") from exc
    return decoded.size


def write_import(name, kind, source, categories, planned_images, *, skipped=0, existing_objects=None,
                 make_display=True, progress=False):
    """Create the dataset, new categories, new images (copied to storage) and their objects, all or nothing.

    planned_images are those the planner found new; `skipped` counts the ones it found already imported.
    existing_objects ({image key: [PlannedObject]}) are the ground-truth objects the input gives for images that
    are already there: those not stored yet are added (see _add_missing_objects), so a re-import that brings
    boxes for old images adds them once.
    Without make_display the display versions are left to annotator.tasks.make_display_versions, queued on commit.
    """
    stored_names = []
    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(name=name, defaults={"kind": kind, "source": source})
            summary = ImportSummary(dataset)
            category_ids = _ensure_categories(dataset, categories, summary)
            already_there = existing_image_keys(dataset)
            new_images = [p for p in planned_images if p.key not in already_there]
            summary.images_skipped = skipped + len(planned_images) - len(new_images)
            with tqdm(total=len(new_images), desc=f"importing {name}", unit="image",
                      disable=not progress or not new_images) as bar:
                for start in range(0, len(new_images), BULK_SIZE):
                    chunk = new_images[start:start + BULK_SIZE]
                    rows = []
                    for planned in chunk:
                        rows.append(_store_image(dataset, planned, category_ids, make_display, stored_names))
                        bar.update()
                    Image.objects.bulk_create(rows)
                    objects = [
                        GroundTruthObject(image=row, category_id=category_ids[obj.category_key], bbox=obj.bbox,
                                          area=obj.area, segmentation=obj.segmentation, iscrowd=obj.iscrowd,
                                          source_id=obj.source_id)
                        for row, planned in zip(rows, chunk) for obj in planned.objects
                    ]
                    GroundTruthObject.objects.bulk_create(objects)
                    summary.images_created += len(rows)
                    summary.objects_created += len(objects)
            if existing_objects:
                _add_missing_objects(dataset, existing_objects, category_ids, summary)
            if new_images and not make_display:
                send_on_commit(make_display_versions, dataset.pk)
    except BaseException:
        for stored in stored_names:
            default_storage.delete(stored)
        raise
    if summary.images_created or summary.objects_created:
        analyze(Image, GroundTruthObject)
    logger.debug("%s", summary)
    return summary


def analyze(*models):
    """Refresh PostgreSQL's statistics of the tables a bulk write filled: the planner of the next query (an admin
    list, the training snapshot) would otherwise plan for the tables as they were before, often empty. A no-op
    elsewhere (SQLite plans without them)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _object_identity(image_id, category_key, bbox, source_id):
    """What makes two ground-truth objects the same: the COCO annotation id when there is one, else the class
    and the box (ILSVRC XML boxes carry no id)."""
    if source_id is not None:
        return image_id, "source", int(source_id)
    return image_id, category_key, tuple(float(value) for value in bbox)


def _add_missing_objects(dataset, existing_objects, category_ids, summary):
    """Add the planned objects of already imported images that are not stored yet (idempotent)."""
    keys = list(existing_objects)
    for start in range(0, len(keys), BULK_SIZE):
        chunk = keys[start:start + BULK_SIZE]
        image_ids = dict(dataset.images.filter(key__in=chunk).values_list("key", "pk"))
        stored = {
            _object_identity(image_id, category_key, bbox, source_id)
            for image_id, category_key, bbox, source_id in GroundTruthObject.objects.filter(
                image_id__in=image_ids.values()
            ).values_list("image_id", "category__key", "bbox", "source_id")
        }
        fresh = [
            GroundTruthObject(image_id=image_ids[key], category_id=category_ids[obj.category_key], bbox=obj.bbox,
                              area=obj.area, segmentation=obj.segmentation, iscrowd=obj.iscrowd,
                              source_id=obj.source_id)
            for key in chunk if key in image_ids
            for obj in existing_objects[key]
            if _object_identity(image_ids[key], obj.category_key, obj.bbox, obj.source_id) not in stored
        ]
        GroundTruthObject.objects.bulk_create(fresh)
        summary.objects_created += len(fresh)
        summary.objects_added_to_existing += len(fresh)
    if summary.objects_added_to_existing:
        logger.info("%s: %d ground-truth objects added to images already imported", dataset.name,
                    summary.objects_added_to_existing)


def _ensure_categories(dataset, categories, summary):
    """Keys to ids; new categories continue the dense index after the existing ones, in the planned order."""
    ids = dict(dataset.categories.values_list("key", "pk"))
    next_index = dataset.categories.count()
    for planned in categories:
        if planned.key in ids:
            continue
        category = Category.objects.create(
            dataset=dataset, key=planned.key, index=next_index, name=planned.name[:200],
            synonyms=list(planned.synonyms), definition=planned.definition, supercategory=planned.supercategory,
        )
        ids[planned.key] = category.pk
        next_index += 1
        summary.categories_created += 1
    return ids


def _store_image(dataset, planned, category_ids, make_display, stored_names):
    data = planned.path.read_bytes()
    row = Image(dataset=dataset, key=planned.key, width=planned.width, height=planned.height, split=planned.split,
                label_id=category_ids[planned.label_key] if planned.label_key else None, meta=planned.meta)
    row.file.save(f"{dataset.name}/{planned.stored_name}", ContentFile(data), save=False)
    stored_names.append(row.file.name)
    if make_display:
        image_files.save_display_version(row, image_files.decode(data))
        stored_names += [name for name in (row.display_file.name, row.display_file_2x.name) if name]
    return row
