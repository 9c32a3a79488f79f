import json

import numpy as np
import pytest

from training.ml import manifest as manifest_module

from .conftest import synthetic_manifest


def test_written_manifest_reads_back_with_its_hash_in_the_name(tmp_path):
    built = synthetic_manifest(tmp_path / "images", per_class=(2, 1, 1))
    path = manifest_module.write(built, tmp_path / "out")
    read = manifest_module.read(path)

    assert path.name == f"manifest-{read.content_hash[:16]}.npz"
    assert read.class_names == ["red", "green", "blue"] and len(read) == 12
    assert np.array_equal(read.point, built.point) and np.array_equal(read.label, built.label)
    assert read.indices("val").tolist() == [6, 7, 8]
    boxes, classes, polygons = read.boxes_of(6)
    assert classes.tolist() == [0] and boxes.shape == (1, 4) and polygons == [[]]
    assert manifest_module.write(built, tmp_path / "again").name == path.name  # same content, same name


def test_different_content_gets_a_different_hash_and_a_tampered_file_is_refused(tmp_path):
    built = synthetic_manifest(tmp_path / "images", per_class=(2, 1, 1))
    path = manifest_module.write(built, tmp_path / "out")
    built.point_weight[0, 0] = 0
    other = manifest_module.write(built, tmp_path / "out")
    assert other.name != path.name

    arrays = dict(np.load(path))
    arrays["point_weight"] = np.zeros_like(arrays["point_weight"])
    np.savez(path, **arrays)
    with pytest.raises(manifest_module.ManifestError, match="does not match its hash"):
        manifest_module.read(path)


def test_coco_style_entries_have_one_point_slot_per_class_and_polygons():
    entries = [{
        "image": "/x.jpg", "split": "val", "labels": [0, 2], "points": {2: (0.4, 0.6, 1.0)},
        "boxes": [{"class": 2, "box": [0.1, 0.1, 0.9, 0.9], "polygons": [[0.1, 0.1, 0.9, 0.1, 0.5, 0.9]]}],
    }]
    built = manifest_module.build("coco", ["a", "b", "c"], entries)
    assert built.label.tolist() == [[1, 0, 1]] and built.labels_of(0) == [0, 2]
    assert built.point_weight.tolist() == [[0, 0, 1]] and np.allclose(built.point[0, 2], [0.4, 0.6])
    _, _, polygons = built.boxes_of(0)
    assert np.allclose(polygons[0][0], [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]])


@pytest.mark.parametrize("entry, message", [
    ({"image": "/x.jpg", "split": "test", "labels": [0]}, "split 'test'"),
    ({"image": "/x.jpg", "split": "train", "labels": [5]}, r"labels \[5\] outside 0..1"),
    ({"image": "/x.jpg", "split": "train", "labels": [0, 1]}, "exactly one label"),
])
def test_bad_entries_are_refused_naming_the_entry_and_field(entry, message):
    with pytest.raises(manifest_module.ManifestError, match=message):
        manifest_module.build("imagenet", ["a", "b"], [entry])


def test_backgrounds_are_kept_checked_and_unknown_in_a_version_1_file(tmp_path):
    entries = [
        {"image": "/a.jpg", "split": "shifted", "labels": [0], "background": 1},
        {"image": "/b.jpg", "split": "shifted", "labels": [1]},
    ]
    manifest = manifest_module.read(manifest_module.write(manifest_module.build("imagenet", ["a", "b"], entries),
                                                          tmp_path))
    assert manifest.background.tolist() == [1, -1]
    with pytest.raises(manifest_module.ManifestError, match=r"/a.jpg: background 2 outside 0..1"):
        manifest_module.build("imagenet", ["a", "b"], [dict(entries[0], background=2)])

    # A manifest written before backgrounds existed (format version 1) still reads, with every background unknown.
    arrays = {name: value for name, value in manifest.arrays().items() if name != "background"}
    header = dict(manifest.header(), version=1)
    header["content_hash"] = manifest_module.content_hash(header, arrays)
    old_path = tmp_path / "old.npz"
    np.savez_compressed(old_path, header=np.asarray(json.dumps(header)), **arrays)
    assert manifest_module.read(old_path).background.tolist() == [-1, -1]
