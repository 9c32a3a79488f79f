import json
import shutil
from io import StringIO
from pathlib import Path
from xml.etree import ElementTree

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PilImage

from annotator import images as image_files
from annotator.models import Category, Dataset, GroundTruthObject, Image
from devtools import demo_data

from .demo_sets import coco_demo_dir, imagenet_demo_dir  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def stored_files(settings):
    media = Path(settings.MEDIA_ROOT)
    return sorted(p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()) if media.exists() else []


def assert_nothing_imported(settings):
    assert not Dataset.objects.exists()
    assert not Image.objects.exists()
    assert not Category.objects.exists()
    assert stored_files(settings) == []


@pytest.fixture
def imagenet_copy(imagenet_demo_dir, tmp_path):
    """A writable copy of the demo ImageNet set, to break."""
    return Path(shutil.copytree(imagenet_demo_dir, tmp_path / "imagenet"))


@pytest.fixture
def coco_copy(coco_demo_dir, tmp_path):
    return Path(shutil.copytree(coco_demo_dir, tmp_path / "coco"))


def import_coco_split(root, split="train", name="shapes-coco", **kwargs):
    call_command("import_coco", images=str(root / "images" / split),
                 annotations=str(root / "annotations" / f"instances_{split}.json"), name=name, split=split,
                 verbosity=0, **kwargs)


# ImageNet layout

def test_imagenet_import_creates_classes_images_boxes_and_display_versions(imagenet_demo_dir, settings):
    call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)

    dataset = Dataset.objects.get(name="shapes")
    assert dataset.kind == "imagenet"
    categories = list(dataset.categories.order_by("index"))
    assert [c.index for c in categories] == list(range(12))
    assert [c.key for c in categories] == sorted(c.wnid for c in demo_data.CLASSES)
    assert (categories[0].name, categories[0].synonyms) == ("circle", ["disc", "round dot"])
    assert categories[0].definition.startswith("a round plane figure")
    counts = {split: dataset.images.filter(split=split).count() for split in ("train", "val", "shifted")}
    assert counts == {"train": 72, "val": 24, "shifted": 24}

    image = dataset.images.get(key="n90000007_3")
    assert image.label.name == "square" and image.split == "train"
    with PilImage.open(imagenet_demo_dir / "train" / "n90000007" / "n90000007_3.JPEG") as original:
        assert (image.width, image.height) == original.size
    assert image.file.read() == (imagenet_demo_dir / "train" / "n90000007" / "n90000007_3.JPEG").read_bytes()
    (box,) = image.ground_truth_objects.all()
    manifest = {entry["file"]: entry for entry in demo_data.load_manifest(imagenet_demo_dir)["images"]}
    assert box.bbox == manifest["train/n90000007/n90000007_3.JPEG"]["objects"][0]["bbox"]
    assert box.category == image.label
    background = demo_data.CLASSES[manifest["train/n90000007/n90000007_3.JPEG"]["background"]].wnid
    assert image.meta["background"] == background  # from backgrounds.txt
    with PilImage.open(image.display_file) as display:
        assert display.format == "JPEG" and max(display.size) <= image_files.DISPLAY_MAX_SIDE["imagenet"]
    assert GroundTruthObject.objects.filter(image__dataset=dataset).count() == 120
    assert len(stored_files(settings)) == 2 * 120


def test_imagenet_reimport_adds_nothing_twice(imagenet_demo_dir, settings):
    call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)
    files_before = stored_files(settings)
    call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)
    assert Image.objects.count() == 120
    assert GroundTruthObject.objects.count() == 120
    assert Category.objects.count() == 12
    assert stored_files(settings) == files_before


def test_imagenet_reimport_adds_only_new_images(imagenet_copy):
    extra = imagenet_copy / "train" / "n90000001" / "n90000001_6.JPEG"
    held_back = extra.read_bytes()
    extra.unlink()
    call_command("import_imagenet", str(imagenet_copy), name="shapes", verbosity=0)
    assert Image.objects.count() == 119
    extra.write_bytes(held_back)
    call_command("import_imagenet", str(imagenet_copy), name="shapes", verbosity=0)
    assert Image.objects.get(key="n90000001_6").ground_truth_objects.count() == 1
    assert Image.objects.count() == 120


def test_imagenet_works_without_mapping_boxes_or_extra_splits(imagenet_copy):
    for path in ("LOC_synset_mapping.txt", "gloss.txt"):
        (imagenet_copy / path).unlink()
    for folder in ("bbox", "val", "shifted"):
        shutil.rmtree(imagenet_copy / folder)
    call_command("import_imagenet", str(imagenet_copy), name="bare", verbosity=0)
    assert Image.objects.filter(split="train").count() == Image.objects.count() == 72
    assert Category.objects.get(key="n90000001").name == "n90000001"
    assert not GroundTruthObject.objects.exists()


def truncate(path, kept_bytes):
    path.write_bytes(path.read_bytes()[:kept_bytes])


def append_line(path, line):
    with open(path, "a") as text_file:
        text_file.write(line)


def break_imagenet(root, how):
    """Apply one kind of damage; returns text the error message must contain."""
    first_xml = root / "bbox" / "n90000002" / "n90000002_1.xml"
    if how == "missing train folder":
        shutil.rmtree(root / "train")
        return "train: no such folder"
    if how == "bad xml":
        first_xml.write_text("<annotation>\n  <object>\n    <name>n90000002</name>\n  </objekt>\n</annotation>\n")
        return "n90000002_1.xml line 4"
    if how == "xml unknown class":
        first_xml.write_text(first_xml.read_text().replace("<name>n90000002</name>", "<name>n01440764</name>"))
        return "n90000002_1.xml: <object> 1 <name> 'n01440764' is not a class"
    if how == "xml box outside image":
        text = first_xml.read_text()
        start = text.index("<xmax>") + len("<xmax>")
        first_xml.write_text(text[:start] + "5000" + text[text.index("</xmax>"):])
        return "n90000002_1.xml: <object> 1 <bndbox>"
    if how == "xml box not a number":
        first_xml.write_text(first_xml.read_text().replace("<ymin>", "<ymin>abc", 1))
        return "<ymin> is 'abc"
    if how == "truncated jpeg":
        truncate(root / "val" / "n90000007" / "n90000007_val_2.JPEG", 600)
        return "n90000007_val_2.JPEG"
    if how == "bad mapping line":
        append_line(root / "LOC_synset_mapping.txt", "n99999999\n")
        return "LOC_synset_mapping.txt line 13"
    if how == "bad backgrounds line":
        append_line(root / "backgrounds.txt", "n90000004_1\n")
        return "backgrounds.txt line 121: expected '<image stem> <wnid>'"
    if how == "background of no class":
        append_line(root / "backgrounds.txt", "n90000004_1 n01440764\n")
        return "backgrounds.txt line 121: background 'n01440764' is not a class"
    if how == "class missing from mapping":
        shutil.copytree(root / "train" / "n90000001", root / "train" / "n01440764")
        return "class n01440764 is not listed in"
    if how == "same stem in two splits":
        shutil.copy(root / "train" / "n90000004" / "n90000004_1.JPEG", root / "val" / "n90000004")
        return "image name n90000004_1 is also used by"
    if how == "link leaving the folder":
        outside = root.parent / "outside.JPEG"
        shutil.copy(root / "train" / "n90000004" / "n90000004_1.JPEG", outside)
        (root / "train" / "n90000004" / "sneaky.JPEG").symlink_to(outside)
        return "is a link to a file outside"
    raise AssertionError(how)


@pytest.mark.parametrize("how", [
    "missing train folder", "bad xml", "xml unknown class", "xml box outside image", "xml box not a number",
    "truncated jpeg", "bad mapping line", "bad backgrounds line", "background of no class",
    "class missing from mapping", "same stem in two splits",
    "link leaving the folder",
])
def test_malformed_imagenet_input_names_the_problem_and_imports_nothing(imagenet_copy, settings, how):
    expected = break_imagenet(imagenet_copy, how)
    with pytest.raises(CommandError) as error:
        call_command("import_imagenet", str(imagenet_copy), name="shapes", verbosity=0)
    assert expected in str(error.value)
    assert "Nothing was imported" in str(error.value)
    assert_nothing_imported(settings)


def test_failure_while_writing_removes_the_files_already_stored(imagenet_demo_dir, settings, monkeypatch):
    calls = []
    real_save = image_files.save_display_version

    def fail_on_the_fifth(image, pil_image):
        calls.append(image.key)
        if len(calls) == 5:
            raise OSError("disk full")
        real_save(image, pil_image)

    monkeypatch.setattr(image_files, "save_display_version", fail_on_the_fifth)
    with pytest.raises(OSError, match="disk full"):
        call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)
    assert len(calls) == 5
    assert_nothing_imported(settings)


def test_dataset_name_must_be_a_slug_and_keep_its_kind(imagenet_demo_dir, coco_demo_dir):
    with pytest.raises(CommandError, match="--name 'my shapes'"):
        call_command("import_imagenet", str(imagenet_demo_dir), name="my shapes", verbosity=0)
    import_coco_split(coco_demo_dir, name="shapes")
    with pytest.raises(CommandError, match="exists and is coco-style"):
        call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)


def test_deferred_display_versions_are_made_by_the_task_after_commit(
        imagenet_copy, django_capture_on_commit_callbacks):
    shutil.rmtree(imagenet_copy / "val")
    shutil.rmtree(imagenet_copy / "shifted")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("import_imagenet", str(imagenet_copy), name="shapes", defer_display=True, verbosity=0)
    assert len(callbacks) == 1
    assert not Image.objects.filter(display_file="").exists()


# COCO instances

def test_coco_import_keeps_categories_boxes_and_polygons(coco_demo_dir, settings):
    import_coco_split(coco_demo_dir)
    dataset = Dataset.objects.get(name="shapes-coco")
    assert dataset.kind == "coco"
    document = json.loads((coco_demo_dir / "annotations" / "instances_train.json").read_text())
    categories = list(dataset.categories.order_by("index"))
    assert [c.key for c in categories] == [str(c["id"]) for c in sorted(document["categories"], key=lambda c: c["id"])]
    assert [c.index for c in categories] == list(range(80))
    assert (categories[1].name, categories[1].supercategory) == ("bicycle", "vehicle")
    assert dataset.images.count() == len(document["images"])
    assert GroundTruthObject.objects.count() == len(document["annotations"])
    annotation = document["annotations"][4]
    stored = GroundTruthObject.objects.get(source_id=annotation["id"])
    assert stored.image.key == str(annotation["image_id"]) and stored.image.label is None
    assert stored.category.key == str(annotation["category_id"])
    assert (stored.bbox, stored.segmentation, stored.area) == (
        annotation["bbox"], annotation["segmentation"], annotation["area"])
    assert all(image.display_file for image in dataset.images.all())
    assert len(stored_files(settings)) == 2 * len(document["images"])


def test_coco_splits_share_one_dataset_and_reimport_adds_nothing(coco_demo_dir, settings):
    for split in demo_data.SPLITS:
        import_coco_split(coco_demo_dir, split)
    files_before = stored_files(settings)
    objects_before = GroundTruthObject.objects.count()
    import_coco_split(coco_demo_dir, "train")
    dataset = Dataset.objects.get()
    assert {split: dataset.images.filter(split=split).count() for split in demo_data.SPLITS} == \
        demo_data.coco_counts(6)
    assert dataset.categories.count() == 80
    assert GroundTruthObject.objects.count() == objects_before
    assert stored_files(settings) == files_before


def edit_annotations(root, change):
    path = root / "annotations" / "instances_train.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=1))


def break_coco(root, how):
    if how == "missing annotations file":
        (root / "annotations" / "instances_train.json").unlink()
        return "annotations file does not exist"
    if how == "json syntax":
        path = root / "annotations" / "instances_train.json"
        path.write_text('{\n  "images": [],\n  "categories": [}\n')
        return "instances_train.json line 3, column 18"
    if how == "unknown image":
        edit_annotations(root, lambda d: d["annotations"][3].update(image_id=999999))
        return "annotations[3] (id 4): image_id 999999 is not in 'images'"
    if how == "unknown category":
        edit_annotations(root, lambda d: d["annotations"][0].update(category_id=12))  # a gap in COCO's ids
        return "annotations[0] (id 1): category_id 12 is not in 'categories'"
    if how == "path traversal":
        edit_annotations(root, lambda d: d["images"][2].update(file_name="../../annotations/instances_val.json"))
        return "images[2] (id 3): file name '../../annotations/instances_val.json' leaves the images folder"
    if how == "absolute path":
        edit_annotations(root, lambda d: d["images"][0].update(file_name="/etc/passwd"))
        return "images[0] (id 1): file name '/etc/passwd' leaves the images folder"
    if how == "missing image file":
        (root / "images" / "train" / "000000000002.jpg").unlink()
        return "images[1] (id 2): image file"
    if how == "truncated jpeg":
        truncate(root / "images" / "train" / "000000000005.jpg", 700)
        return "images[4] (id 5): cannot decode image"
    if how == "not an image":
        (root / "images" / "train" / "000000000005.jpg").write_text("hello")
        return "images[4] (id 5): cannot decode image"
    if how == "size mismatch":
        edit_annotations(root, lambda d: d["images"][0].update(width=1000))
        return "images[0] (id 1): says 1000x"
    if how == "bad bbox":
        edit_annotations(root, lambda d: d["annotations"][2].update(bbox=[1, 2, 3]))
        return "annotations[2] (id 3): 'bbox' must be [x, y, width, height]"
    if how == "bbox outside":
        edit_annotations(root, lambda d: d["annotations"][2].update(bbox=[10, 10, 900, 5]))
        return "annotations[2] (id 3): 'bbox' [10, 10, 900, 5] lies outside"
    if how == "bad polygon":
        edit_annotations(root, lambda d: d["annotations"][1].update(segmentation=[[1, 2, 3]]))
        return "annotations[1] (id 2): 'segmentation'[0] must be a flat list"
    if how == "duplicate annotation id":
        edit_annotations(root, lambda d: d["annotations"][5].update(id=1))
        return "annotations[5] (id 1): annotation id 1 is used twice"
    if how == "missing field":
        edit_annotations(root, lambda d: d["images"][3].pop("height"))
        return "images[3] (id 4): 'height' must be a positive integer, got None"
    raise AssertionError(how)


@pytest.mark.parametrize("how", [
    "missing annotations file", "json syntax", "unknown image", "unknown category", "path traversal",
    "absolute path", "missing image file", "truncated jpeg", "not an image", "size mismatch", "bad bbox",
    "bbox outside", "bad polygon", "duplicate annotation id", "missing field",
])
def test_malformed_coco_input_names_the_problem_and_imports_nothing(coco_copy, settings, how):
    expected = break_coco(coco_copy, how)
    with pytest.raises(CommandError) as error:
        import_coco_split(coco_copy)
    assert expected in str(error.value)
    assert_nothing_imported(settings)


def test_rle_segmentation_is_accepted_when_its_size_matches(coco_copy):
    def to_rle(document):
        image = document["images"][0]
        annotation = next(a for a in document["annotations"] if a["image_id"] == image["id"])
        annotation.update(segmentation={"counts": [0, 10, 90], "size": [image["height"], image["width"]]},
                          iscrowd=1)

    edit_annotations(coco_copy, to_rle)
    import_coco_split(coco_copy)
    assert GroundTruthObject.objects.get(iscrowd=True).segmentation["counts"] == [0, 10, 90]


def test_admin_shows_an_imported_image_with_its_box(imagenet_demo_dir, admin_client):
    call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)
    image = Image.objects.get(key="n90000008_2")
    x, y, w, h = image.ground_truth_objects.get().bbox

    listing = admin_client.get("/admin/annotator/image/", {"q": "n90000008_2"})
    assert image.display_file.url in listing.content.decode()
    page = admin_client.get(f"/admin/annotator/image/{image.pk}/change/").content.decode()
    assert f'<image href="{image.display_file.url}" width="{image.width}" height="{image.height}"/>' in page
    assert f'<rect x="{x}" y="{y}" width="{w}" height="{h}"' in page
    assert admin_client.get(image.display_file.url).status_code == 200


# Re-import adds the ground truth of images already there (issue #2)

def box_rows():
    return sorted(GroundTruthObject.objects.values_list("image__key", "category__key", "bbox", "source_id"))


def test_imagenet_reimport_adds_the_boxes_of_images_already_there_once(imagenet_copy):
    shutil.move(imagenet_copy / "bbox", imagenet_copy.parent / "bbox-later")
    call_command("import_imagenet", str(imagenet_copy), name="shapes", verbosity=0)
    assert Image.objects.count() == 120 and not GroundTruthObject.objects.exists()
    shutil.move(imagenet_copy.parent / "bbox-later", imagenet_copy / "bbox")

    out = StringIO()
    call_command("import_imagenet", str(imagenet_copy), name="shapes", stdout=out)
    assert "0 images imported, 120 already there, 120 objects (120 of them added to images already there)" \
        in out.getvalue()
    image = Image.objects.get(key="n90000007_3")
    manifest = {entry["file"]: entry for entry in demo_data.load_manifest(imagenet_copy)["images"]}
    assert [o.bbox for o in image.ground_truth_objects.all()] == \
        [manifest["train/n90000007/n90000007_3.JPEG"]["objects"][0]["bbox"]]
    after_second = box_rows()

    out = StringIO()
    call_command("import_imagenet", str(imagenet_copy), name="shapes", stdout=out)
    assert box_rows() == after_second and len(after_second) == 120
    assert "120 already there, 0 objects, 0 new categories" in out.getvalue()


def test_imagenet_reimport_adds_a_box_added_to_an_xml_and_keeps_the_others(imagenet_copy):
    call_command("import_imagenet", str(imagenet_copy), name="shapes", verbosity=0)
    xml = imagenet_copy / "bbox" / "n90000002" / "n90000002_1.xml"
    text = xml.read_text()
    second = text[text.index("<object>"):text.index("</object>") + len("</object>")]
    second = second.replace(second[second.index("<bndbox>"):second.index("</bndbox>")],
                            "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>7</ymax>")
    xml.write_text(text.replace("</annotation>", second + "\n</annotation>"))

    for _ in range(2):
        call_command("import_imagenet", str(imagenet_copy), name="shapes", verbosity=0)

    boxes = [o.bbox for o in Image.objects.get(key="n90000002_1").ground_truth_objects.order_by("id")]
    assert len(boxes) == 2 and boxes[1] == [1, 2, 4, 5]
    assert GroundTruthObject.objects.count() == 121


def test_coco_reimport_adds_the_annotations_of_images_already_there_once(coco_copy):
    path = coco_copy / "annotations" / "instances_train.json"
    full = path.read_text()
    document = json.loads(full)
    held_back = document["annotations"][::2]
    document["annotations"] = document["annotations"][1::2]
    path.write_text(json.dumps(document))
    import_coco_split(coco_copy)
    assert GroundTruthObject.objects.count() == len(document["annotations"])
    path.write_text(full)

    import_coco_split(coco_copy)
    import_coco_split(coco_copy)

    assert GroundTruthObject.objects.count() == len(json.loads(full)["annotations"])
    added = GroundTruthObject.objects.get(source_id=held_back[0]["id"])
    assert (added.image.key, added.bbox, added.segmentation) == (
        str(held_back[0]["image_id"]), held_back[0]["bbox"], held_back[0]["segmentation"])
    assert len(set(GroundTruthObject.objects.values_list("source_id", flat=True))) == GroundTruthObject.objects.count()


# The flat ILSVRC val layout: DIR/val/*.JPEG with LOC_val_solution.csv

def flatten_val(root):
    """Move val/<wnid>/*.JPEG to val/*.JPEG and write LOC_val_solution.csv from the val boxes; returns the rows."""
    rows = {}
    for class_dir in sorted((root / "val").iterdir()):
        for image in sorted(class_dir.iterdir()):
            xml = ElementTree.parse(root / "bbox" / class_dir.name / f"{image.stem}.xml").getroot()
            boxes = [" ".join([o.findtext("name")] + [o.find("bndbox").findtext(t) for t in
                                                        ("xmin", "ymin", "xmax", "ymax")])
                     for o in xml.iter("object")]
            rows[image.stem] = " ".join(boxes)
            shutil.move(image, root / "val" / image.name)
            (root / "bbox" / class_dir.name / f"{image.stem}.xml").unlink()
        class_dir.rmdir()
    lines = ["ImageId,PredictionString"] + [f"{stem},{boxes} " for stem, boxes in rows.items()]
    lines.append("ILSVRC2012_val_00049999,n90000001 1 1 10 10")  # an image this copy does not have: skipped
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    return rows


def test_flat_val_layout_takes_labels_and_boxes_from_the_solution_csv(imagenet_copy, imagenet_demo_dir):
    rows = flatten_val(imagenet_copy)

    call_command("import_imagenet", str(imagenet_copy), name="flat", verbosity=0)

    val = Dataset.objects.get(name="flat").images.filter(split="val")
    assert val.count() == 24 == len(rows)
    image = val.get(key="n90000007_val_2")
    assert image.label.key == "n90000007" and image.meta["source"] == "val/n90000007_val_2.JPEG"
    reference = ElementTree.parse(imagenet_demo_dir / "bbox" / "n90000007" / "n90000007_val_2.xml").getroot()
    expected = [[int(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
                for o in reference.iter("object")]
    assert [[x, y, x + w, y + h] for x, y, w, h in (o.bbox for o in image.ground_truth_objects.all())] == expected
    assert GroundTruthObject.objects.count() == 120

    call_command("import_imagenet", str(imagenet_copy), name="flat", verbosity=0)
    assert GroundTruthObject.objects.count() == 120 and Image.objects.count() == 120


@pytest.mark.parametrize("how, message", [
    ("no csv", "images directly in the folder (the flat ILSVRC layout) need"),
    ("image without a row", "val/n90000001_val_2.JPEG: image n90000001_val_2 has no row in"),
    ("two classes in a row", "LOC_val_solution.csv line 2: boxes of several classes (n90000001, n90000002)"),
    ("box outside", "LOC_val_solution.csv line 2 box 1: box (0, 0, 9999, 5) is empty or outside the"),
    ("not a number", "LOC_val_solution.csv line 2 box 1: coordinates"),
    ("bad header", "LOC_val_solution.csv line 1: expected the header 'ImageId,PredictionString'"),
    ("flat train", "train must use class folders"),
])
def test_flat_val_layout_errors_name_the_file_and_line(imagenet_copy, settings, how, message):
    flatten_val(imagenet_copy)
    csv_path = imagenet_copy / "LOC_val_solution.csv"
    lines = csv_path.read_text().splitlines()
    first_stem = lines[1].split(",")[0]
    if how == "no csv":
        csv_path.unlink()
    elif how == "image without a row":
        csv_path.write_text("\n".join(line for line in lines if not line.startswith("n90000001_val_2,")))
    elif how == "two classes in a row":
        lines[1] = f"{first_stem},n90000001 0 0 5 5 n90000002 0 0 5 5"
    elif how == "box outside":
        lines[1] = f"{first_stem},n90000001 0 0 9999 5"
    elif how == "not a number":
        lines[1] = f"{first_stem},n90000001 0 zero 5 5"
    elif how == "bad header":
        lines[0] = "id,boxes"
    elif how == "flat train":
        shutil.copy(imagenet_copy / "train" / "n90000001" / "n90000001_1.JPEG", imagenet_copy / "train" / "x.JPEG")
    if how not in ("no csv", "image without a row"):
        csv_path.write_text("\n".join(lines) + "\n")

    with pytest.raises(CommandError) as error:
        call_command("import_imagenet", str(imagenet_copy), name="flat", verbosity=0)
    assert message in str(error.value)
    assert_nothing_imported(settings)
