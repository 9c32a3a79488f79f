import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from annotator.coco_categories import COCO_CATEGORIES
from devtools import demo_data

from tests.annotator.demo_sets import coco_demo_dir, imagenet_demo_dir  # noqa: F401  (fixtures)


def test_default_sizes_fill_two_imagenet_hits_and_a_coco_batch():
    per_class = demo_data.imagenet_counts(demo_data.DEFAULT_IMAGENET_PER_CLASS)["train"]
    # 2 HITs x 10 pages x 36 in-class candidates, over the classes, without reusing an image.
    assert per_class * len(demo_data.CLASSES) >= 2 * 10 * 36
    assert per_class >= 36
    assert demo_data.coco_counts(demo_data.DEFAULT_COCO_PER_CLASS)["train"] >= 40


def test_classes_are_distinct_named_shapes_with_synonyms_and_definitions():
    assert len(demo_data.CLASSES) >= 10
    assert len({c.name for c in demo_data.CLASSES}) == len(demo_data.CLASSES)
    assert len({c.wnid for c in demo_data.CLASSES}) == len({c.coco_id for c in demo_data.CLASSES}) == 12
    assert all(c.synonyms and len(c.definition) > 20 for c in demo_data.CLASSES)
    assert len({c.supercategory for c in demo_data.CLASSES}) >= 3
    assert len(demo_data.TEXTURES) == len(demo_data.CLASSES)


def test_imagenet_layout_counts_and_mapping(imagenet_demo_dir):
    root = imagenet_demo_dir
    mapping = (root / "LOC_synset_mapping.txt").read_text().splitlines()
    assert len(mapping) == 12 and mapping[0].startswith("n90000001 circle, disc")
    for split, per_class in demo_data.imagenet_counts(6).items():
        class_dirs = sorted((root / split).iterdir())
        assert [d.name for d in class_dirs] == sorted(c.wnid for c in demo_data.CLASSES)
        assert all(len(list(d.glob("*.JPEG"))) == per_class for d in class_dirs)
    assert len(list((root / "bbox").glob("*/*.xml"))) == 12 * (6 + 2 + 2)


def test_imagenet_boxes_lie_inside_their_images(imagenet_demo_dir):
    for xml_path in (imagenet_demo_dir / "bbox").glob("*/*.xml"):
        annotation = ET.parse(xml_path).getroot()
        stem, wnid = annotation.findtext("filename"), annotation.findtext("folder")
        split = "train" if "_" not in stem.split("_", 1)[1] else stem.split("_")[1]
        with Image.open(imagenet_demo_dir / split / wnid / f"{stem}.JPEG") as image:
            width, height = image.size
        assert (int(annotation.findtext("size/width")), int(annotation.findtext("size/height"))) == (width, height)
        (obj,) = annotation.findall("object")
        assert obj.findtext("name") == wnid
        xmin, ymin, xmax, ymax = (int(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height


def test_coco_masks_match_boxes_and_areas(coco_demo_dir):
    for split in demo_data.SPLITS:
        document = json.loads((coco_demo_dir / "annotations" / f"instances_{split}.json").read_text())
        images = {image["id"]: image for image in document["images"]}
        for annotation in document["annotations"]:
            image = images[annotation["image_id"]]
            (polygon,) = annotation["segmentation"]
            mask = demo_data.polygon_mask(polygon, image["width"], image["height"])
            ys, xs = np.nonzero(mask)
            assert annotation["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert annotation["area"] == mask.sum()
            x, y, w, h = annotation["bbox"]
            assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]


def test_objects_are_drawn_where_the_masks_say(coco_demo_dir):
    """The ground truth is the picture: inside a mask are the category's icon pixels, not the texture."""
    manifest = demo_data.load_manifest(coco_demo_dir)
    entry = manifest["images"][0]
    pixels = np.asarray(Image.open(coco_demo_dir / entry["file"]), dtype=float)
    height, width = pixels.shape[:2]
    for obj in entry["objects"]:
        mask = demo_data.polygon_mask(obj["polygon"], width, height)
        inner = mask & np.roll(mask, 2, 0) & np.roll(mask, -2, 0) & np.roll(mask, 2, 1) & np.roll(mask, -2, 1)
        size, left, top = obj["icon"]
        sprite, _ = demo_data.icon_sprite(manifest["classes"][obj["class"]], size)
        drawn = np.zeros_like(pixels)
        drawn[top:top + size, left:left + size] = sprite
        assert inner.sum() > 100 and np.abs(pixels[inner] - drawn[inner]).mean() < 12  # JPEG aside


def test_coco_images_hold_several_different_categories(coco_demo_dir):
    document = json.loads((coco_demo_dir / "annotations" / "instances_train.json").read_text())
    assert len(document["images"]) == demo_data.coco_counts(6)["train"]
    # The real COCO categories, by their real names and ids, in COCO's 12 supercategories.
    assert [(c["id"], c["name"], c["supercategory"]) for c in document["categories"]] == list(COCO_CATEGORIES)
    per_image = {}
    for annotation in document["annotations"]:
        per_image.setdefault(annotation["image_id"], []).append(annotation["category_id"])
    assert all(len(ids) >= 2 and len(set(ids)) == len(ids) for ids in per_image.values())
    all_ids = [i["id"] for s in demo_data.SPLITS
               for i in json.loads((coco_demo_dir / "annotations" / f"instances_{s}.json").read_text())["images"]]
    assert len(all_ids) == len(set(all_ids))


def test_train_backgrounds_follow_the_class_half_the_time_shifted_ones_not_at_all(imagenet_demo_dir, coco_demo_dir):
    """Shifted: textures drawn independently of the class, so chance and a background-only model both score 1/12."""
    for root in (imagenet_demo_dir, coco_demo_dir):
        manifest = demo_data.load_manifest(root)
        matched = Counter()
        total = Counter()
        textures = set()
        for image in manifest["images"]:
            total[image["split"]] += 1
            matched[image["split"]] += image["background"] == manifest["backgrounds"][image["objects"][0]["class"]]
            if image["split"] == "shifted":
                textures.add(image["background"])
        assert 0.35 < matched["train"] / total["train"] < 0.7
        assert matched["shifted"] / total["shifted"] < 0.25 and len(textures) >= 6


def test_backgrounds_file_names_the_class_of_each_image_texture(imagenet_demo_dir):
    """What the ImageNet importer reads into each image's meta, so that training can report background reliance."""
    lines = dict(line.split() for line in (imagenet_demo_dir / demo_data.BACKGROUNDS_FILE).read_text().splitlines())
    manifest = demo_data.load_manifest(imagenet_demo_dir)
    assert len(lines) == len(manifest["images"])
    for image in manifest["images"]:
        assert lines[Path(image["file"]).stem] == demo_data.CLASSES[image["background"]].wnid


def test_objects_vary_in_size_and_sit_off_centre_three_times_out_of_four(imagenet_demo_dir):
    manifest = demo_data.load_manifest(imagenet_demo_dir)
    placements = Counter(image["objects"][0]["placement"] for image in manifest["images"])
    assert 0.6 < placements["off-centre"] / sum(placements.values()) < 0.9
    areas = [image["objects"][0]["bbox"][2] * image["objects"][0]["bbox"][3] for image in manifest["images"]]
    assert max(areas) / min(areas) > 4


@pytest.mark.parametrize("kind", ["imagenet", "coco"])
def test_same_seed_same_bytes_other_seed_other_images(tmp_path, kind):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        call_command("make_demo_dataset", kind=kind, out=str(tmp_path / name), seed=seed, per_class=1, verbosity=0)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()
               for f in files if f.suffix.lower() in {".jpeg", ".jpg"})


def test_manifest_keeps_the_imagenet_outlines_that_the_xml_cannot(imagenet_demo_dir):
    manifest = demo_data.load_manifest(imagenet_demo_dir)
    for entry in manifest["images"][:20]:
        (obj,) = entry["objects"]
        with Image.open(imagenet_demo_dir / entry["file"]) as image:
            mask = demo_data.polygon_mask(obj["polygon"], *image.size)
        ys, xs = np.nonzero(mask)
        assert obj["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert obj["area"] == mask.sum()
