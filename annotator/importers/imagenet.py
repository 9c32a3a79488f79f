"""ImageNet (ILSVRC) folder layout.

    DIR/train/<wnid>/<stem>.JPEG          the images of each class (required)
    DIR/val/<wnid>/..., DIR/shifted/...   optional further splits, same layout
    DIR/LOC_synset_mapping.txt            optional: "<wnid> name, synonym, ..." per line
    DIR/gloss.txt                         optional: "<wnid><TAB>definition" per line
    DIR/bbox/<wnid>/<stem>.xml            optional: ILSVRC / Pascal-VOC boxes (xmax, ymax exclusive)

Image keys are file stems, unique across splits; category indexes are dense in wnid order.
"""
import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm import tqdm

from annotator.models import Split, TaskKind

from .common import (
    DatasetImportError, PlannedCategory, PlannedImage, PlannedObject, check_dataset_name, existing_image_keys,
    read_image_size, resolve_inside, write_import,
)

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
MAPPING_FILE = "LOC_synset_mapping.txt"
GLOSS_FILE = "gloss.txt"


def import_imagenet(directory, name, *, make_display=True, progress=False):
    root = Path(directory)
    if not (root / "train").is_dir():
        raise DatasetImportError(f"{root / 'train'}: no such folder (expected {root}/train/<wnid>/*.JPEG)")
    existing = check_dataset_name(name, TaskKind.IMAGENET)
    names = _read_mapping(root / MAPPING_FILE)
    definitions = _read_gloss(root / GLOSS_FILE)
    files = _list_images(root, names)
    wnids = sorted({wnid for _, wnid, _ in files})
    categories = [
        PlannedCategory(key=wnid, name=names.get(wnid, [wnid])[0], synonyms=names.get(wnid, [wnid])[1:],
                        definition=definitions.get(wnid, ""))
        for wnid in wnids
    ]
    already_there = existing_image_keys(existing)
    new_files = [entry for entry in files if entry[2].stem not in already_there]
    planned = [
        _plan_image(root, split, wnid, path, set(wnids))
        for split, wnid, path in tqdm(new_files, desc=f"checking {root}", disable=not progress or not new_files)
    ]
    return write_import(name, TaskKind.IMAGENET, str(root), categories, planned,
                        skipped=len(files) - len(new_files), make_display=make_display, progress=progress)


def _read_lines(path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetImportError(f"{path}: not UTF-8 text ({exc})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def _read_mapping(path):
    """{wnid: [name, synonym, ...]} from LOC_synset_mapping.txt, or {} when the file is absent."""
    if not path.exists():
        return {}
    mapping = {}
    for number, line in _read_lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DatasetImportError(f"{path} line {number}: expected '<wnid> <name>, <synonym>, ...', got {line!r}")
        wnid, names = parts
        if wnid in mapping:
            raise DatasetImportError(f"{path} line {number}: {wnid} is listed twice")
        mapping[wnid] = [n.strip() for n in names.split(",") if n.strip()]
    return mapping


def _read_gloss(path):
    if not path.exists():
        return {}
    definitions = {}
    for number, line in _read_lines(path):
        parts = line.split("\t", 1)
        if len(parts) != 2:
            raise DatasetImportError(f"{path} line {number}: expected '<wnid><TAB><definition>'")
        definitions[parts[0].strip()] = parts[1].strip()
    return definitions


def _list_images(root, names):
    """[(split, wnid, path)] for every image file, checking layout, class names and key uniqueness."""
    files, seen = [], {}
    for split in Split.values:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(split_dir.iterdir()):
            if not class_dir.is_dir():
                raise DatasetImportError(f"{class_dir}: expected only class folders <wnid>/ in {split_dir}")
            wnid = class_dir.name
            if names and wnid not in names:
                raise DatasetImportError(f"{class_dir}: class {wnid} is not listed in {root / MAPPING_FILE}")
            if len(wnid) > 64:
                raise DatasetImportError(f"{class_dir}: class folder names are at most 64 characters")
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                resolve_inside(root, path.relative_to(root).as_posix(), str(path))
                if path.stem in seen:
                    raise DatasetImportError(f"{path}: image name {path.stem} is also used by {seen[path.stem]}")
                seen[path.stem] = path
                files.append((split, wnid, path))
    if not files:
        raise DatasetImportError(f"{root / 'train'}: no images found (expected <wnid>/*.JPEG)")
    return files


def _plan_image(root, split, wnid, path, wnids):
    width, height = read_image_size(path, str(path))
    relative = path.relative_to(root).as_posix()
    xml_path = root / "bbox" / wnid / f"{path.stem}.xml"
    objects = _read_boxes(xml_path, width, height, wnids) if xml_path.exists() else []
    return PlannedImage(key=path.stem, split=split, path=path, stored_name=relative, width=width, height=height,
                        label_key=wnid, meta={"source": relative}, objects=objects)


def _read_boxes(path, width, height, wnids):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise DatasetImportError(f"{path} line {line}, column {column}: not well-formed XML") from exc
    size = root.find("size")
    if size is not None and size.findtext("width") and size.findtext("height"):
        stated = (_integer(size, "width", path, "<size>"), _integer(size, "height", path, "<size>"))
        if stated != (width, height):
            raise DatasetImportError(
                f"{path}: <size> says {stated[0]}x{stated[1]} but the image is {width}x{height}")
    objects = []
    for number, node in enumerate(root.iter("object"), start=1):
        where = f"<object> {number}"
        wnid = (node.findtext("name") or "").strip()
        if wnid not in wnids:
            raise DatasetImportError(f"{path}: {where} <name> {wnid!r} is not a class of this dataset")
        box = node.find("bndbox")
        if box is None:
            raise DatasetImportError(f"{path}: {where} has no <bndbox>")
        xmin, ymin, xmax, ymax = (_integer(box, tag, path, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
            raise DatasetImportError(
                f"{path}: {where} <bndbox> ({xmin}, {ymin}, {xmax}, {ymax}) is empty or outside the "
                f"{width}x{height} image")
        objects.append(PlannedObject(category_key=wnid, bbox=[xmin, ymin, xmax - xmin, ymax - ymin],
                                     area=float((xmax - xmin) * (ymax - ymin))))
    return objects


def _integer(parent, tag, path, where):
    text = parent.findtext(tag)
    try:
        return round(float(text))
    except (TypeError, ValueError):
        raise DatasetImportError(f"{path}: {where} <{tag}> is {text!r}, not a number") from None
