"""COCO instances format: {"images": [...], "categories": [...], "annotations": [...]} and an images folder.

Categories may carry optional "synonyms" and "definition" keys (the demo data has them). Image keys are COCO
image ids as text; category indexes are dense in COCO-id order; annotation ids make objects idempotent: a
re-import adds new images and the annotations of images already there that are not stored yet.
"""
import json
from numbers import Number
from pathlib import Path

from tqdm import tqdm

from annotator.models import Split, TaskKind

from .common import (
    DatasetImportError, PlannedCategory, PlannedImage, PlannedObject, check_dataset_name, existing_image_keys,
    read_image_size, resolve_inside, write_import,
)


def import_coco(images_dir, annotations_file, name, *, split=Split.TRAIN, make_display=True, progress=False):
    images_root, annotations_path = Path(images_dir), Path(annotations_file)
    if split not in Split.values:
        raise DatasetImportError(f"--split {split!r}: choose one of {', '.join(Split.values)}")
    if not images_root.is_dir():
        raise DatasetImportError(f"{images_root}: no such images folder")
    existing = check_dataset_name(name, TaskKind.COCO)
    document = _load(annotations_path)
    source = _Source(annotations_path)
    categories = _read_categories(document, source)
    already_there = existing_image_keys(existing)
    entries = _read_images(document, source)
    new_entries = [(where, entry) for where, entry in entries if str(entry["id"]) not in already_there]
    planned = {
        entry["id"]: _plan_image(images_root, split, where, entry)
        for where, entry in tqdm(new_entries, desc=f"checking {images_root}", disable=not progress or not new_entries)
    }
    existing_objects = {}
    _read_annotations(document, source, {entry["id"]: entry for _, entry in entries}, categories, planned,
                      existing_objects)
    return write_import(name, TaskKind.COCO, str(annotations_path), list(categories.values()), list(planned.values()),
                        skipped=len(entries) - len(new_entries), existing_objects=existing_objects,
                        make_display=make_display, progress=progress)


class _Source:
    """Names places in the JSON file for error messages: 'instances.json: annotations[3] (id 7)'."""

    def __init__(self, path):
        self.path = path

    def at(self, section, position, item):
        item_id = item.get("id") if isinstance(item, dict) else None
        return f"{self.path}: {section}[{position}]" + (f" (id {item_id})" if item_id is not None else "")


def _load(path):
    if not path.is_file():
        raise DatasetImportError(f"{path}: annotations file does not exist")
    try:
        document = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise DatasetImportError(f"{path} line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetImportError(f"{path}: not UTF-8 JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise DatasetImportError(f"{path}: expected a JSON object with images, categories and annotations")
    for section in ("images", "categories", "annotations"):
        if not isinstance(document.get(section), list):
            raise DatasetImportError(f"{path}: '{section}' is missing or not a list")
    return document


def _require(item, key, kinds, where, description):
    if not isinstance(item, dict):
        raise DatasetImportError(f"{where}: expected an object")
    value = item.get(key)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise DatasetImportError(f"{where}: '{key}' must be {description}, got {value!r}")
    return value


def _read_categories(document, source):
    """{coco id: PlannedCategory}, in COCO-id order."""
    categories = {}
    for position, item in enumerate(document["categories"]):
        where = source.at("categories", position, item)
        category_id = _require(item, "id", int, where, "an integer")
        name = _require(item, "name", str, where, "a string")
        if category_id in categories:
            raise DatasetImportError(f"{where}: category id {category_id} is used twice")
        synonyms = item.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise DatasetImportError(f"{where}: 'synonyms' must be a list of strings")
        categories[category_id] = PlannedCategory(
            key=str(category_id), name=name, synonyms=synonyms, definition=str(item.get("definition", "")),
            supercategory=str(item.get("supercategory", "")),
        )
    if not categories:
        raise DatasetImportError(f"{source.path}: 'categories' is empty")
    return dict(sorted(categories.items()))


def _read_images(document, source):
    entries, seen = [], set()
    for position, item in enumerate(document["images"]):
        where = source.at("images", position, item)
        image_id = _require(item, "id", int, where, "an integer")
        _require(item, "file_name", str, where, "a file name")
        for key in ("width", "height"):
            if _require(item, key, int, where, "a positive integer") <= 0:
                raise DatasetImportError(f"{where}: '{key}' must be a positive integer, got {item[key]}")
        if image_id in seen:
            raise DatasetImportError(f"{where}: image id {image_id} is used twice")
        seen.add(image_id)
        entries.append((where, item))
    return entries


def _plan_image(images_root, split, where, entry):
    path = resolve_inside(images_root, entry["file_name"], where)
    width, height = read_image_size(path, where)
    if (width, height) != (entry["width"], entry["height"]):
        raise DatasetImportError(
            f"{where}: says {entry['width']}x{entry['height']} but {path} is {width}x{height}")
    file_name = Path(entry["file_name"]).as_posix()
    return PlannedImage(key=str(entry["id"]), split=split, path=path, stored_name=f"{split}/{file_name}",
                        width=width, height=height, meta={"file_name": file_name, "coco_id": entry["id"]})


def _read_annotations(document, source, images, categories, planned, existing_objects):
    """Check every annotation; attach those of new images to their planned image, the others (images already
    imported) go to existing_objects ({image key: [PlannedObject]})."""
    seen = set()
    for position, item in enumerate(document["annotations"]):
        where = source.at("annotations", position, item)
        annotation_id = _require(item, "id", int, where, "an integer")
        if annotation_id in seen:
            raise DatasetImportError(f"{where}: annotation id {annotation_id} is used twice")
        seen.add(annotation_id)
        image_id = _require(item, "image_id", int, where, "an integer")
        if image_id not in images:
            raise DatasetImportError(f"{where}: image_id {image_id} is not in 'images'")
        category_id = _require(item, "category_id", int, where, "an integer")
        if category_id not in categories:
            raise DatasetImportError(f"{where}: category_id {category_id} is not in 'categories'")
        image = images[image_id]
        bbox = _read_bbox(item, where, image["width"], image["height"])
        segmentation = item.get("segmentation")
        _check_segmentation(segmentation, where, image["width"], image["height"])
        area = item.get("area", bbox[2] * bbox[3])
        if not isinstance(area, Number) or isinstance(area, bool) or area < 0:
            raise DatasetImportError(f"{where}: 'area' must be a non-negative number, got {area!r}")
        iscrowd = item.get("iscrowd", 0)
        if iscrowd not in (0, 1):
            raise DatasetImportError(f"{where}: 'iscrowd' must be 0 or 1, got {iscrowd!r}")
        planned_object = PlannedObject(
            category_key=str(category_id), bbox=bbox, area=float(area), segmentation=segmentation,
            iscrowd=bool(iscrowd), source_id=annotation_id,
        )
        if image_id in planned:
            planned[image_id].objects.append(planned_object)
        else:
            existing_objects.setdefault(str(image_id), []).append(planned_object)


def _read_bbox(item, where, width, height):
    bbox = item.get("bbox")
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, Number) and not isinstance(v, bool) for v in bbox)):
        raise DatasetImportError(f"{where}: 'bbox' must be [x, y, width, height], got {bbox!r}")
    x, y, w, h = bbox
    # One pixel of slack: published COCO boxes sometimes end a fraction past the border.
    if w < 0 or h < 0 or x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        raise DatasetImportError(f"{where}: 'bbox' {bbox} lies outside the {width}x{height} image")
    return bbox


def _check_segmentation(segmentation, where, width, height):
    """None, a list of polygons [x1, y1, x2, y2, ...] (3+ points each), or RLE {"counts", "size": [h, w]}."""
    if segmentation is None:
        return
    if isinstance(segmentation, dict):
        if "counts" not in segmentation or segmentation.get("size") != [height, width]:
            raise DatasetImportError(
                f"{where}: RLE 'segmentation' needs 'counts' and 'size' [{height}, {width}]")
        return
    if not isinstance(segmentation, list):
        raise DatasetImportError(f"{where}: 'segmentation' must be a list of polygons or an RLE object")
    for number, polygon in enumerate(segmentation):
        if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                or not all(isinstance(v, Number) and not isinstance(v, bool) for v in polygon)):
            raise DatasetImportError(
                f"{where}: 'segmentation'[{number}] must be a flat list of at least 3 x, y pairs")
