"""ImageNet (ILSVRC) folder layout.

    DIR/train/<wnid>/<stem>.JPEG          the images of each class (required)
    DIR/val/<wnid>/..., DIR/shifted/...   optional further splits, same layout
    DIR/LOC_synset_mapping.txt            optional: "<wnid> name, synonym, ..." per line
    DIR/gloss.txt                         optional: "<wnid><TAB>definition" per line
    DIR/bbox/<wnid>/<stem>.xml            optional: ILSVRC / Pascal-VOC boxes (xmax, ymax exclusive)
    DIR/backgrounds.txt                   optional: "<stem> <wnid>" per line, the class whose usual background the
                                          image shows (the demo's textures, ImageNet-9-style sets); kept in the
                                          image's meta["background"], training reports how often a model
                                          predicts it

The val and shifted splits may instead use the flat layout of the ILSVRC / Kaggle release: the images directly
in DIR/val/ (DIR/val/ILSVRC2012_val_00000001.JPEG) with labels and boxes in DIR/LOC_val_solution.csv (header
"ImageId,PredictionString", each row "<stem>,<wnid> <xmin> <ymin> <xmax> <ymax> [<wnid> <xmin> ...]"; the
wnid is the image's label, so all of a row's boxes must name the same class). DIR/shifted/ flat reads
DIR/LOC_shifted_solution.csv. Rows of images that are not in the folder are skipped (a subset is fine); an image
without a row is an error.

Image keys are file stems, unique across splits; category indexes are dense in wnid order. A re-import adds the
new images and the boxes of images already there that are not stored yet (never twice).
"""
import csv
import logging
import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm import tqdm

from annotator.models import Split, TaskKind

from .common import (
    DatasetImportError, PlannedCategory, PlannedImage, PlannedObject, check_dataset_name,
    read_image_size, resolve_inside, write_import,
)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
MAPPING_FILE = "LOC_synset_mapping.txt"
GLOSS_FILE = "gloss.txt"
BACKGROUNDS_FILE = "backgrounds.txt"
# Splits that may come in the flat ILSVRC layout, with the solution file that labels them.
FLAT_SPLITS = {Split.VAL: "LOC_val_solution.csv", Split.SHIFTED: "LOC_shifted_solution.csv"}


def import_imagenet(directory, name, *, make_display=True, progress=False):
    root = Path(directory)
    if not (root / "train").is_dir():
        raise DatasetImportError(f"{root / 'train'}: no such folder (expected {root}/train/<wnid>/*.JPEG)")
    existing = check_dataset_name(name, TaskKind.IMAGENET)
    names = _read_mapping(root / MAPPING_FILE)
    definitions = _read_gloss(root / GLOSS_FILE)
    flat_boxes = {}
    files = _list_images(root, names, flat_boxes)
    wnids = sorted({wnid for _, wnid, _ in files})
    categories = [
        PlannedCategory(key=wnid, name=names.get(wnid, [wnid])[0], synonyms=names.get(wnid, [wnid])[1:],
                        definition=definitions.get(wnid, ""))
        for wnid in wnids
    ]
    sizes = {key: (width, height) for key, width, height in existing.images.values_list("key", "width", "height")} \
        if existing else {}
    new_files = [entry for entry in files if entry[2].stem not in sizes]
    backgrounds = _read_backgrounds(root / BACKGROUNDS_FILE, set(wnids))
    planned = [
        _plan_image(root, split, wnid, path, set(wnids), flat_boxes, backgrounds)
        for split, wnid, path in tqdm(new_files, desc=f"checking {root}", disable=not progress or not new_files)
    ]
    # Boxes for images imported before (e.g. the bbox folder arrived later); the stored size checks them.
    existing_objects = {}
    for split, wnid, path in files:
        if path.stem in sizes:
            objects = _objects_for(root, wnid, path, *sizes[path.stem], set(wnids), flat_boxes)
            if objects:
                existing_objects[path.stem] = objects
    return write_import(name, TaskKind.IMAGENET, str(root), categories, planned,
                        skipped=len(files) - len(new_files), existing_objects=existing_objects,
                        make_display=make_display, progress=progress)


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


def _read_backgrounds(path, wnids):
    """{stem: wnid of the class whose background the image shows} from backgrounds.txt, or {} when absent."""
    if not path.exists():
        return {}
    backgrounds = {}
    for number, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise DatasetImportError(f"{path} line {number}: expected '<image stem> <wnid>', got {line!r}")
        stem, wnid = parts
        if wnid not in wnids:
            raise DatasetImportError(f"{path} line {number}: background {wnid!r} is not a class of this dataset")
        backgrounds[stem] = wnid
    return backgrounds


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


def _list_images(root, names, flat_boxes):
    """[(split, wnid, path)] for every image file, checking layout, class names and key uniqueness.

    Flat splits (images directly in DIR/val/) take their labels from the split's solution CSV; their boxes are
    put in flat_boxes ({stem: [(where, wnid, xmin, ymin, xmax, ymax)]})."""
    files, seen = [], {}
    for split in Split.values:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        entries = sorted(split_dir.iterdir())
        loose_images = [path for path in entries if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]
        if loose_images:
            listed = _list_flat_split(root, split, split_dir, entries, loose_images, names, flat_boxes)
        else:
            listed = _list_class_folders(root, split_dir, entries, names)
        for split_wnid, path in listed:
            resolve_inside(root, path.relative_to(root).as_posix(), str(path))
            if path.stem in seen:
                raise DatasetImportError(f"{path}: image name {path.stem} is also used by {seen[path.stem]}")
            seen[path.stem] = path
            files.append((split, split_wnid, path))
    if not files:
        raise DatasetImportError(f"{root / 'train'}: no images found (expected <wnid>/*.JPEG)")
    return files


def _check_wnid(wnid, names, root, where):
    if names and wnid not in names:
        raise DatasetImportError(f"{where}: class {wnid} is not listed in {root / MAPPING_FILE}")
    if len(wnid) > 64:
        raise DatasetImportError(f"{where}: class names are at most 64 characters")


def _list_class_folders(root, split_dir, entries, names):
    listed = []
    for class_dir in entries:
        if not class_dir.is_dir():
            raise DatasetImportError(f"{class_dir}: expected only class folders <wnid>/ in {split_dir}")
        _check_wnid(class_dir.name, names, root, class_dir)
        listed += [
            (class_dir.name, path) for path in sorted(class_dir.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES
        ]
    return listed


def _list_flat_split(root, split, split_dir, entries, loose_images, names, flat_boxes):
    """The flat ILSVRC layout: images directly in the split folder, labelled by the split's solution CSV."""
    if split not in FLAT_SPLITS:
        raise DatasetImportError(
            f"{loose_images[0]}: images directly in {split_dir}; {split} must use class folders <wnid>/*.JPEG "
            f"(the flat layout with a solution CSV is read for {', '.join(FLAT_SPLITS)} only)")
    folders = [path for path in entries if path.is_dir()]
    if folders:
        raise DatasetImportError(
            f"{split_dir}: holds both images and the folder {folders[0].name}/; use either class folders "
            f"<wnid>/ or the flat layout with {FLAT_SPLITS[split]}")
    csv_path = root / FLAT_SPLITS[split]
    if not csv_path.is_file():
        raise DatasetImportError(
            f"{split_dir}: images directly in the folder (the flat ILSVRC layout) need {csv_path} with "
            f"'ImageId,PredictionString' rows giving each image's class and boxes")
    rows = _read_solution(csv_path, names, root)
    listed = []
    for path in loose_images:
        if path.stem not in rows:
            raise DatasetImportError(f"{path}: image {path.stem} has no row in {csv_path}")
        wnid, boxes = rows[path.stem]
        flat_boxes[path.stem] = boxes
        listed.append((wnid, path))
    unused = len(rows) - len(loose_images)
    if unused:
        logger.info("%s: %d rows name images that are not in %s, skipped", csv_path, unused, split_dir)
    return listed


def _read_solution(path, names, root):
    """{stem: (wnid, [(where, wnid, xmin, ymin, xmax, ymax)])} from a LOC_val_solution.csv-style file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetImportError(f"{path}: not UTF-8 text ({exc})") from exc
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or [column.strip() for column in header[:2]] != ["ImageId", "PredictionString"]:
        raise DatasetImportError(f"{path} line 1: expected the header 'ImageId,PredictionString', got {header!r}")
    rows = {}
    for number, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{path} line {number}"
        if len(row) != 2 or not row[0].strip():
            raise DatasetImportError(f"{where}: expected '<ImageId>,<wnid> <xmin> <ymin> <xmax> <ymax> ...'")
        stem, tokens = row[0].strip(), row[1].split()
        if stem in rows:
            raise DatasetImportError(f"{where}: image {stem} is listed twice")
        if not tokens or len(tokens) % 5:
            raise DatasetImportError(
                f"{where}: PredictionString must be groups of '<wnid> <xmin> <ymin> <xmax> <ymax>', "
                f"got {len(tokens)} values")
        boxes = []
        for start in range(0, len(tokens), 5):
            wnid, *corners = tokens[start:start + 5]
            box_where = f"{where} box {start // 5 + 1}"
            _check_wnid(wnid, names, root, box_where)
            try:
                xmin, ymin, xmax, ymax = (round(float(value)) for value in corners)
            except ValueError:
                raise DatasetImportError(f"{box_where}: coordinates {' '.join(corners)!r} are not numbers") from None
            boxes.append((box_where, wnid, xmin, ymin, xmax, ymax))
        classes = sorted({box[1] for box in boxes})
        if len(classes) > 1:
            raise DatasetImportError(
                f"{where}: boxes of several classes ({', '.join(classes)}); the row's class is the image's label")
        rows[stem] = (classes[0], boxes)
    return rows


def _plan_image(root, split, wnid, path, wnids, flat_boxes, backgrounds):
    width, height = read_image_size(path, str(path))
    relative = path.relative_to(root).as_posix()
    objects = _objects_for(root, wnid, path, width, height, wnids, flat_boxes)
    meta = {"source": relative}
    if path.stem in backgrounds:
        meta["background"] = backgrounds[path.stem]
    return PlannedImage(key=path.stem, split=split, path=path, stored_name=relative, width=width, height=height,
                        label_key=wnid, meta=meta, objects=objects)


def _objects_for(root, wnid, path, width, height, wnids, flat_boxes):
    """The image's boxes: from the solution CSV for a flat split, else from DIR/bbox/<wnid>/<stem>.xml if any."""
    if path.stem in flat_boxes:
        return [_checked_box(where, box_wnid, xmin, ymin, xmax, ymax, width, height, wnids)
                for where, box_wnid, xmin, ymin, xmax, ymax in flat_boxes[path.stem]]
    xml_path = root / "bbox" / wnid / f"{path.stem}.xml"
    return _read_boxes(xml_path, width, height, wnids) if xml_path.exists() else []


def _checked_box(where, wnid, xmin, ymin, xmax, ymax, width, height, wnids):
    if wnid not in wnids:
        raise DatasetImportError(f"{where}: class {wnid!r} is not a class of this dataset")
    if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
        raise DatasetImportError(
            f"{where}: box ({xmin}, {ymin}, {xmax}, {ymax}) is empty or outside the {width}x{height} image")
    return PlannedObject(category_key=wnid, bbox=[xmin, ymin, xmax - xmin, ymax - ymin],
                         area=float((xmax - xmin) * (ymax - ymin)))


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
