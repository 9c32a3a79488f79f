"""What both importers share: the plan of what to write, file checks, and the one transactional write."""
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.text import slugify
from tqdm import tqdm

from annotator import images as image_files
from annotator.models import Category, Dataset, GroundTruthObject, Image
from annotator.tasks import make_display_versions

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

    def __str__(self):
        return (f"dataset {self.dataset.name}: {self.images_created} images imported, {self.images_skipped} already "
                f"there, {self.objects_created} objects, {self.categories_created} new categories")


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


def write_import(name, kind, source, categories, planned_images, *, skipped=0, make_display=True, progress=False):
    """Create the dataset, new categories, new images (copied to storage) and their objects, all or nothing.

    planned_images are those the planner found new; `skipped` counts the ones it found already imported.
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
            if new_images and not make_display:
                transaction.on_commit(lambda: make_display_versions.delay(dataset.pk))
    except BaseException:
        for stored in stored_names:
            default_storage.delete(stored)
        raise
    logger.debug("%s", summary)
    return summary


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
        stored_names.append(row.display_file.name)
    return row
