"""Synthetic image manifests for the training tests: a coloured square (the object) on a noisy background."""
import numpy as np
import pytest
import torch
from PIL import Image

from training.ml import manifest as manifest_module

COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """OpenMP threads spin-wait on a shared, oversubscribed CPU: one thread trains tiny models several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_manifest(directory, per_class=(8, 2, 2), size=(40, 32), kind="imagenet", seed=0):
    """Images with one square per image (class = its colour), clicks at the square's centre, boxes as ground truth.

    per_class: images per class in the train, val and shifted splits (shifted: a brighter, differently coloured
    background). COCO-style entries carry the square's class as their only label and one point for it.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    width, height = size
    entries = []
    for split, count in zip(("train", "val", "shifted"), per_class):
        for label, colour in enumerate(COLOURS):
            for i in range(count):
                background = rng.integers(0, 90, (height, width, 3)) + (120 if split == "shifted" else 0)
                pixels = background.astype(np.uint8)
                side = int(rng.integers(10, 16))
                left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
                pixels[top:top + side, left:left + side] = colour
                path = directory / f"{split}-{label}-{i}.jpg"
                Image.fromarray(pixels).save(path, quality=95)
                box = [left / width, top / height, (left + side) / width, (top + side) / height]
                centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0)
                entries.append({
                    "image": str(path), "split": split, "labels": [label],
                    "points": {0 if kind == "imagenet" else label: centre},
                    "boxes": [{"class": label, "box": box}],
                })
    return manifest_module.build(kind, ["red", "green", "blue"], entries, source={"test": True})


@pytest.fixture
def tiny_manifest_path(tmp_path):
    return manifest_module.write(synthetic_manifest(tmp_path / "images"), tmp_path / "manifests")
