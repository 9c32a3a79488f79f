"""A small, honest, generated image set written in the real ImageNet (ILSVRC) and COCO formats.

No photo set can be downloaded here, so the demo draws objects on textured backgrounds. ImageNet kind: each class
is a coloured shape (circle, star, ...) with a name, synonyms and a definition. COCO kind: the 80 real COCO
categories, in their 12 supercategories, each drawn as its Noto Emoji icon (the ones the task page shows,
frontend_static/icons/noto/), so the demo's HITs ask about real COCO names. The generator knows exactly where
every object is: the boxes and polygons it writes are the ground truth, and its object pixels are the rasterised
polygons (an icon is cut along the outline of its largest part).

In train and val each class (COCO: each supercategory) sits on "its own" background texture half of the time
(BACKGROUND_MATCH_RATE), so the background alone predicts the class well above chance. In the shifted split the
texture is drawn uniformly from all of them, independent of the class: there both chance and a model that only
reads the background score 1/12 top-1 (ImageNet kind), and the share of predictions equal to the background's class
(written next to each image, BACKGROUNDS_FILE) tells which of the two a model is; one that looks at the object
scores above both. ImageNet-style objects cover a fifth to two fifths of the shorter side and sit off-centre three
times out of four (OFF_CENTRE_RATE), so a point always guessed at the image centre is often off the object.
Everything is deterministic for a seed.
"""
import functools
import io
import json
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import contourpy
import numpy as np
import resvg_py
from django.conf import settings
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from annotator.coco_categories import COCO_CATEGORIES
from annotator.worker.icons import NOTO_FOLDER, noto_icon

logger = logging.getLogger(__name__)

BACKGROUND_MATCH_RATE = 0.5
OFF_CENTRE_RATE = 0.75
IMAGENET_RADIUS = (0.2, 0.4)  # of the shorter side
COCO_RADIUS = (0.1, 0.22)
IMAGE_WIDTHS = (160, 176, 192)
IMAGE_HEIGHTS = (128, 144, 160)
# COCO-sized pictures: the task page shows them 450 px high without upscaling.
COCO_IMAGE_WIDTHS = (560, 600, 640)
COCO_IMAGE_HEIGHTS = (450, 480)
JPEG_QUALITY = 92
SPLITS = ("train", "val", "shifted")
MANIFEST_NAME = "demo_manifest.json"
BACKGROUNDS_FILE = "backgrounds.txt"
# 100 train images a class: enough for a small CPU model to learn shapes, not only textures, in minutes
# (benchmarks/learning_effect.py); 20 a class in val and in shifted.
DEFAULT_IMAGENET_PER_CLASS = 100
# Each of the 80 COCO classes appears in about this many COCO-style train images (about 3 objects per image):
# 80 train images, four 20-page HITs.
DEFAULT_COCO_PER_CLASS = 3


@dataclass(frozen=True)
class ShapeClass:
    name: str
    synonyms: tuple
    definition: str
    supercategory: str
    coco_id: int

    @property
    def wnid(self):
        return f"n9{self.coco_id:07d}"


# COCO ids have gaps, as in the real COCO category list.
CLASSES = (
    ShapeClass("circle", ("disc", "round dot"), "a round plane figure whose edge is everywhere the same distance "
               "from its centre", "round", 1),
    ShapeClass("ring", ("annulus", "hoop"), "a circular band with a round hole in the middle", "round", 2),
    ShapeClass("crescent", ("sickle", "new moon"), "the curved shape of the moon in its first or last quarter, "
               "thick in the middle and tapering to two points", "round", 4),
    ShapeClass("heart", ("love heart", "valentine"), "a figure with two rounded lobes at the top meeting in a "
               "point at the bottom", "round", 5),
    ShapeClass("square", ("quadrate", "box"), "a plane figure with four equal straight sides and four right "
               "angles", "polygon", 7),
    ShapeClass("triangle", ("trigon", "three-sided figure"), "a plane figure with three straight sides and three "
               "angles", "polygon", 8),
    ShapeClass("diamond", ("rhombus", "lozenge"), "a four-sided figure with equal sides, taller than it is wide, "
               "standing on one corner", "polygon", 9),
    ShapeClass("hexagon", ("six-sided polygon", "hex"), "a plane figure with six straight sides and six angles",
               "polygon", 11),
    ShapeClass("star", ("five-pointed star", "pentagram shape"), "a figure with five points radiating from its "
               "centre", "symbol", 13),
    ShapeClass("cross", ("plus sign", "greek cross"), "two bars of equal length crossing at right angles in "
               "their middles", "symbol", 14),
    ShapeClass("arrow", ("pointer", "arrowhead"), "a straight shaft with a triangular head at one end, "
               "showing a direction", "symbol", 16),
    ShapeClass("hourglass", ("sand glass", "bow tie"), "two triangles meeting at their tips, wide at both ends "
               "and narrow in the middle", "symbol", 17),
)

# One texture per class; (name, dark colour, light colour).
TEXTURES = (
    ("horizontal stripes", (40, 70, 120), (150, 180, 220)),
    ("vertical stripes", (110, 60, 30), (220, 180, 130)),
    ("diagonal stripes", (30, 100, 60), (150, 210, 160)),
    ("checkerboard", (70, 70, 70), (190, 190, 190)),
    ("dots", (120, 40, 90), (230, 170, 210)),
    ("grid", (20, 60, 80), (120, 190, 200)),
    ("waves", (90, 90, 20), (210, 210, 120)),
    ("blotches", (60, 40, 100), (170, 150, 220)),
    ("gradient", (100, 30, 30), (230, 150, 120)),
    ("bricks", (120, 60, 50), (200, 170, 150)),
    ("zigzag", (30, 80, 100), (170, 220, 200)),
    ("speckles", (80, 80, 50), (200, 200, 160)),
)


def _regular_polygon(n, radius=1.0, phase=0.0):
    return [(radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _crescent():
    # A unit circle minus a circle of radius r centred at (d, 0): big arc left, small arc back.
    d, r = 0.45, 0.85
    x = (1 + d * d - r * r) / (2 * d)
    y = math.sqrt(1 - x * x)
    big_start, small_start = math.atan2(y, x), math.atan2(y, x - d)
    big = [(math.cos(a), math.sin(a)) for a in np.linspace(big_start, 2 * math.pi - big_start, 40)]
    small = [(d + r * math.cos(a), r * math.sin(a)) for a in np.linspace(2 * math.pi - small_start, small_start, 30)]
    return big + small[1:-1]


def _heart():
    points = []
    for t in np.linspace(0, 2 * math.pi, 48, endpoint=False):
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x / 17, -y / 17))
    return points


def _ring():
    # One "keyhole" polygon (outer circle, then the inner one backwards): COCO polygons have no holes.
    outer = _regular_polygon(40)
    inner = _regular_polygon(40, radius=0.55)
    return outer + [outer[0]] + [inner[0]] + inner[::-1]


OUTLINES = {
    "circle": _regular_polygon(40),
    "ring": _ring(),
    "crescent": _crescent(),
    "heart": _heart(),
    "square": _regular_polygon(4, phase=math.pi / 4),
    "triangle": _regular_polygon(3, phase=-math.pi / 2),
    "diamond": [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)],
    "hexagon": _regular_polygon(6),
    "star": [(r * math.cos(-math.pi / 2 + k * math.pi / 5), r * math.sin(-math.pi / 2 + k * math.pi / 5))
             for k, r in zip(range(10), [1, 0.42] * 5)],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
              (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "arrow": [(-1, -0.22), (0.2, -0.22), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.22), (-1, 0.22)],
    "hourglass": [(-0.75, -1), (0.75, -1), (0.12, 0), (0.75, 1), (-0.75, 1), (-0.12, 0)],
}


@dataclass
class DemoObject:
    class_index: int
    bbox: list  # [x, y, width, height], exact bounds of the rasterised mask
    polygon: list  # flat [x1, y1, x2, y2, ...] in pixels, what the mask is rasterised from
    area: int  # mask pixels
    placement: str  # "centre" or "off-centre"
    icon: list = field(default_factory=list)  # COCO kind: [size, left, top] of the icon drawn, in pixels


@dataclass
class DemoImage:
    file_name: str
    split: str
    width: int
    height: int
    background: int
    objects: list = field(default_factory=list)


def texture(rng, index, width, height):
    """Background texture `index` as an HxWx3 uint8 array, with a random period, phase and colour jitter."""
    name, dark, light = TEXTURES[index]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(9, 18)
    phase = rng.uniform(0, period)
    if name == "horizontal stripes":
        t = ((y + phase) // (period / 2)) % 2
    elif name == "vertical stripes":
        t = ((x + phase) // (period / 2)) % 2
    elif name == "diagonal stripes":
        t = ((x + y + phase) // (period / 2)) % 2
    elif name == "checkerboard":
        t = (((x + phase) // period) + ((y + phase) // period)) % 2
    elif name == "dots":
        t = (((x + phase) % period - period / 2) ** 2 + ((y + phase) % period - period / 2) ** 2
             < (period / 4) ** 2).astype(np.float32)
    elif name == "grid":
        t = (((x + phase) % period < 2) | ((y + phase) % period < 2)).astype(np.float32)
    elif name == "waves":
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (y + 3 * np.sin(x / period * 2)) / period + phase)
    elif name == "blotches":
        coarse = rng.uniform(0, 1, size=(height // 12 + 2, width // 12 + 2)).astype(np.float32)
        t = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC),
                       dtype=np.float32) / 255
    elif name == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = (x * np.cos(angle) + y * np.sin(angle))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    elif name == "bricks":
        row = (y + phase) // (period / 2)
        t = (((y + phase) % (period / 2) < 1.5) | (((x + (row % 2) * period / 2) % period) < 1.5)).astype(np.float32)
    elif name == "zigzag":
        t = ((y + np.abs((x % period) - period / 2) + phase) // (period / 3)) % 2
    else:  # speckles
        t = (rng.uniform(0, 1, size=(height, width)) < 0.25).astype(np.float32)
    jitter = rng.integers(-15, 16, size=3)
    dark_colour = np.clip(np.array(dark) + jitter, 0, 255)
    light_colour = np.clip(np.array(light) + jitter, 0, 255)
    pixels = dark_colour[None, None, :] * (1 - t[..., None]) + light_colour[None, None, :] * t[..., None]
    return pixels.astype(np.float32)


def _object_colour(rng):
    """A saturated colour of random hue: colour says nothing about the class."""
    hue = rng.uniform(0, 1)
    r, g, b = (np.clip(abs(((hue * 6 + k) % 6) - 3) - 1, 0, 1) for k in (0, 4, 2))
    brightness = rng.uniform(0.7, 1.0)
    return np.array([r, g, b]) * 255 * brightness


def _place(rng, class_index, width, height, radius, centred):
    """Polygon vertices (pixels) for a shape of `radius` pixels, rotated and slightly stretched, inside the image."""
    outline = np.array(OUTLINES[CLASSES[class_index].name], dtype=np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    stretch = rng.uniform(0.85, 1.15, size=2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shape = (outline * stretch) @ rotation.T * radius
    low, high = shape.min(axis=0), shape.max(axis=0)
    # Keep a one-pixel margin so the box lies strictly inside the image.
    min_centre = 1 - low
    max_centre = np.array([width - 2, height - 2]) - high
    image_centre = np.array([width / 2, height / 2])
    if centred:
        centre = image_centre + rng.uniform(-0.04, 0.04, size=2) * [width, height]
    else:
        for _ in range(50):
            centre = rng.uniform(min_centre, np.maximum(max_centre, min_centre))
            if np.abs(centre - image_centre).max() > 0.15 * min(width, height):
                break
    centre = np.clip(centre, min_centre, np.maximum(max_centre, min_centre))
    # Rounded as written to the files, so the mask drawn here is the one a reader rasterises.
    return np.round(shape + centre, 2)


def _rasterise(polygon, width, height):
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in polygon], fill=255)
    return np.asarray(mask) > 0


def polygon_mask(flat_polygon, width, height):
    """The boolean mask of a flat COCO polygon [x1, y1, x2, y2, ...]: how the generator draws its objects."""
    return _rasterise(np.asarray(flat_polygon, dtype=np.float64).reshape(-1, 2), width, height)


@dataclass(frozen=True)
class IconClass:
    """A COCO category drawn as its icon; background is its supercategory's texture."""

    name: str
    supercategory: str
    coco_id: int
    background: int


SUPERCATEGORIES = list(dict.fromkeys(supercategory for _, _, supercategory in COCO_CATEGORIES))
COCO_CLASSES = tuple(IconClass(name, supercategory, coco_id, SUPERCATEGORIES.index(supercategory))
                     for coco_id, name, supercategory in COCO_CATEGORIES)


@functools.cache
def icon_sprite(name, size):
    """(RGB float array, outline polygon relative to the sprite) of the category's icon drawn size x size."""
    svg = Path(settings.STATICFILES_DIRS[0]) / NOTO_FOLDER / f"{noto_icon(name)}.svg"
    png = resvg_py.svg_to_bytes(svg_path=str(svg), width=size, height=size)
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3] / 255
    padded = np.pad(alpha, 1)  # closed outlines even where the drawing touches the edge
    lines = contourpy.contour_generator(z=padded).lines(0.5)
    outline = max(lines, key=lambda line: abs(_shoelace(line)))
    return rgba[..., :3], np.round(outline - 1, 2)


def _shoelace(points):
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _place_icon(rng, name, width, height, radius):
    """(sprite RGB, top-left corner, polygon in image pixels) of an icon about 2 x radius wide, inside the image."""
    size = int(np.clip(round(2 * radius / 16) * 16, 32, min(width, height) - 4))  # few sizes: renders are cached
    sprite, outline = icon_sprite(name, size)
    left = int(rng.integers(1, width - size - 1))
    top = int(rng.integers(1, height - size - 1))
    return sprite, (left, top), outline + [left, top]


def _mask_box(mask):
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def render(rng, width, height, class_indices, background, radius_range, centred_rate=1 - OFF_CENTRE_RATE,
           icons=False):
    """Draw the classes' shapes (icons: the COCO classes' icons) on a background texture; objects never overlap.
    Returns (PIL image, objects)."""
    pixels = texture(rng, background, width, height)
    objects, blocked = [], np.zeros((height, width), dtype=bool)
    for class_index in class_indices:
        for _ in range(60):
            radius = rng.uniform(*radius_range) * min(width, height)
            centred = len(class_indices) == 1 and rng.uniform() < centred_rate
            if icons:
                sprite, corner, polygon = _place_icon(rng, COCO_CLASSES[class_index].name, width, height, radius)
            else:
                polygon = _place(rng, class_index, width, height, radius, centred)
            mask = _rasterise(polygon, width, height)
            if mask.sum() >= 16 and not (mask & blocked).any():
                break
        else:
            continue  # no room left for this object
        blocked |= _dilate(mask)
        if icons:
            left, top = corner
            drawn = np.zeros_like(pixels)
            drawn[top:top + sprite.shape[0], left:left + sprite.shape[1]] = sprite
            pixels[mask] = drawn[mask]
        else:
            pixels[mask] = _object_colour(rng)
        flat = [float(v) for v in polygon.reshape(-1)]
        placement = "centre" if centred or _is_central(polygon, width, height) else "off-centre"
        objects.append(DemoObject(class_index, _mask_box(mask), flat, int(mask.sum()), placement,
                                  [sprite.shape[0], *corner] if icons else []))
    noise = rng.normal(0, 4, size=pixels.shape)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")
    return image, objects


def _dilate(mask, pixels=3):
    """The mask grown by `pixels`, so that objects keep a gap between them (filtered around the mask only)."""
    ys, xs = np.nonzero(mask)
    top, left = max(0, ys.min() - pixels), max(0, xs.min() - pixels)
    bottom, right = ys.max() + pixels + 1, xs.max() + pixels + 1
    region = Image.fromarray(mask[top:bottom, left:right].astype(np.uint8) * 255)
    grown = np.zeros_like(mask)
    grown[top:bottom, left:right] = np.asarray(region.filter(ImageFilter.MaxFilter(2 * pixels + 1))) > 0
    return grown


def _is_central(polygon, width, height):
    centre = (polygon.min(axis=0) + polygon.max(axis=0)) / 2
    return bool(np.abs(centre - [width / 2, height / 2]).max() <= 0.08 * min(width, height))


def choose_background(rng, class_index, split):
    """Train/val: the class's own texture with BACKGROUND_MATCH_RATE, else another; shifted: any, uniformly."""
    if split == "shifted":
        return int(rng.integers(len(TEXTURES)))
    if rng.uniform() < BACKGROUND_MATCH_RATE:
        return class_index
    others = [t for t in range(len(TEXTURES)) if t != class_index]
    return int(rng.choice(others))


def _split_rng(seed, split):
    return np.random.default_rng([seed, SPLITS.index(split)])


def _image_size(rng):
    return int(rng.choice(IMAGE_WIDTHS)), int(rng.choice(IMAGE_HEIGHTS))


def _save_jpeg(image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def _imagenet_xml(wnid, stem, image, objects):
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = wnid
    ET.SubElement(root, "filename").text = stem
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "LUAB demo shapes"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = CLASSES[obj.class_index].wnid
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = "0"
        ET.SubElement(node, "difficult").text = "0"
        box = ET.SubElement(node, "bndbox")
        x, y, w, h = obj.bbox
        # xmax/ymax are exclusive pixel bounds: width = xmax - xmin (what the importer reads back).
        for tag, value in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def imagenet_counts(per_class):
    """Images per class in each split."""
    return {"train": per_class, "val": max(2, per_class // 5), "shifted": max(2, per_class // 5)}


def coco_counts(per_class):
    """Images in each split: 2 to 4 objects per image, so each class is in about per_class train images."""
    n_train = max(4, per_class * len(COCO_CLASSES) // 3)
    return {"train": n_train, "val": max(4, n_train // 3), "shifted": max(4, n_train // 3)}


def generate_imagenet(out_dir, seed=0, per_class=DEFAULT_IMAGENET_PER_CLASS, progress=False):
    """Write DIR/{train,val,shifted}/<wnid>/<stem>.JPEG, DIR/bbox/<wnid>/<stem>.xml, LOC_synset_mapping.txt,
    gloss.txt (wnid TAB definition), backgrounds.txt ("<stem> <wnid>": the class whose texture the image's
    background is, read by the ImageNet importer) and the generator's manifest. Returns the DemoImages written."""
    out = Path(out_dir)
    counts = imagenet_counts(per_class)
    out.mkdir(parents=True, exist_ok=True)
    (out / "LOC_synset_mapping.txt").write_text(
        "".join(f"{c.wnid} {', '.join((c.name, *c.synonyms))}\n" for c in CLASSES))
    (out / "gloss.txt").write_text("".join(f"{c.wnid}\t{c.definition}\n" for c in CLASSES))
    written = []
    total = sum(counts.values()) * len(CLASSES)
    with tqdm(total=total, desc="imagenet demo images", disable=not progress) as bar:
        for split in SPLITS:
            rng = _split_rng(seed, split)
            for class_index, shape_class in enumerate(CLASSES):
                wnid = shape_class.wnid
                for n in range(counts[split]):
                    stem = f"{wnid}_{n + 1}" if split == "train" else f"{wnid}_{split}_{n + 1}"
                    width, height = _image_size(rng)
                    background = choose_background(rng, class_index, split)
                    image, objects = render(rng, width, height, [class_index], background, IMAGENET_RADIUS)
                    _save_jpeg(image, out / split / wnid / f"{stem}.JPEG")
                    xml_path = out / "bbox" / wnid / f"{stem}.xml"
                    xml_path.parent.mkdir(parents=True, exist_ok=True)
                    xml_path.write_text(_imagenet_xml(wnid, stem, image, objects))
                    written.append(DemoImage(f"{split}/{wnid}/{stem}.JPEG", split, width, height, background, objects))
                    bar.update()
    (out / BACKGROUNDS_FILE).write_text("".join(
        f"{Path(image.file_name).stem} {CLASSES[image.background].wnid}\n" for image in written))
    _write_manifest(out, "imagenet", seed, written)
    return written


def _coco_document(images, first_image_id, first_annotation_id):
    categories = [{"id": c.coco_id, "name": c.name, "supercategory": c.supercategory} for c in COCO_CLASSES]
    coco_images, annotations = [], []
    annotation_id = first_annotation_id
    for offset, image in enumerate(images):
        image_id = first_image_id + offset
        coco_images.append({"id": image_id, "file_name": Path(image.file_name).name,
                            "width": image.width, "height": image.height})
        for obj in image.objects:
            annotations.append({"id": annotation_id, "image_id": image_id,
                                "category_id": COCO_CLASSES[obj.class_index].coco_id, "bbox": obj.bbox,
                                "segmentation": [obj.polygon], "area": obj.area, "iscrowd": 0})
            annotation_id += 1
    return {"info": {"description": "LUAB demo: COCO categories drawn as Noto Emoji icons (generated)",
                     "version": "1.0"},
            "licenses": [{"id": 1, "name": "Noto Emoji icons: Apache License 2.0"}],
            "images": coco_images, "annotations": annotations, "categories": categories}


def generate_coco(out_dir, seed=0, per_class=DEFAULT_COCO_PER_CLASS, progress=False):
    """Write DIR/images/{train,val,shifted}/*.jpg and DIR/annotations/instances_{split}.json.

    Each image holds 2 to 4 objects of different categories; the background follows the first object's class
    (the "main" one) as in the ImageNet kind. Image ids and annotation ids are unique across the splits.
    """
    out = Path(out_dir)
    counts = coco_counts(per_class)
    written, image_id, annotation_id = [], 1, 1
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    with tqdm(total=sum(counts.values()), desc="coco demo images", disable=not progress) as bar:
        for split in SPLITS:
            rng = _split_rng(seed, split)
            split_images = []
            for n in range(counts[split]):
                width, height = int(rng.choice(COCO_IMAGE_WIDTHS)), int(rng.choice(COCO_IMAGE_HEIGHTS))
                n_objects = int(rng.integers(2, 5))
                class_indices = [int(i) for i in rng.choice(len(COCO_CLASSES), size=n_objects, replace=False)]
                background = choose_background(rng, COCO_CLASSES[class_indices[0]].background, split)
                image, objects = render(rng, width, height, class_indices, background, COCO_RADIUS, icons=True)
                file_name = f"images/{split}/{image_id + n:012d}.jpg"
                _save_jpeg(image, out / file_name)
                split_images.append(DemoImage(file_name, split, width, height, background, objects))
                bar.update()
            document = _coco_document(split_images, image_id, annotation_id)
            (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(document))
            image_id += len(split_images)
            annotation_id += len(document["annotations"])
            written.extend(split_images)
    _write_manifest(out, "coco", seed, written)
    return written


def _write_manifest(out, kind, seed, images):
    """What the formats cannot say: each image's background texture, each object's placement, and the ImageNet
    kind's object outlines (its XML holds boxes only)."""
    manifest = {
        "kind": kind, "seed": seed, "background_match_rate": BACKGROUND_MATCH_RATE,
        "classes": [c.name for c in (COCO_CLASSES if kind == "coco" else CLASSES)],
        "backgrounds": [c.background for c in COCO_CLASSES] if kind == "coco" else list(range(len(CLASSES))),
        "textures": [t[0] for t in TEXTURES],
        "images": [{"file": image.file_name, "split": image.split, "background": image.background,
                    "objects": [{"class": o.class_index, "bbox": o.bbox, "polygon": o.polygon, "area": o.area,
                                 "placement": o.placement, **({"icon": o.icon} if o.icon else {})}
                                for o in image.objects]} for image in images],
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    logger.debug("%s demo data: %d images in %s (seed %d)", kind, len(images), out, seed)


def load_manifest(out_dir):
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text())
