import numpy as np
import torch
from PIL import Image

from training.ml import manifest as manifest_module
from training.ml.data import EpochBatchSampler, ManifestDataset, collate, decode_batch_on_device, preresize
from training.ml.transforms import TrainTransform

from .conftest import synthetic_manifest


def test_device_decode_gives_the_same_batch_as_pillow_decode(tmp_path):
    manifest = synthetic_manifest(tmp_path / "images", per_class=(2, 0, 0))
    transform = TrainTransform(24, scale=(0.3, 1.0))
    on_workers = ManifestDataset(manifest, "train", transform, seed=3, decode="pil")
    on_device = ManifestDataset(manifest, "train", transform, seed=3, decode="device")
    pil_batch = collate([on_workers[i] for i in range(4)])
    device_batch = decode_batch_on_device(collate([on_device[i] for i in range(4)]), on_device, torch.device("cpu"))

    assert torch.equal(pil_batch["points"], device_batch["points"])
    assert torch.equal(pil_batch["weights"], device_batch["weights"])
    difference = (pil_batch["pixels"].float() - device_batch["pixels"].float()).abs().mean()
    assert difference < 3  # the two JPEG decoders round differently, by a grey level or so


def test_augmentation_is_the_same_for_an_image_in_any_process_and_changes_with_the_epoch(tmp_path):
    manifest = synthetic_manifest(tmp_path / "images", per_class=(2, 0, 0))
    dataset = ManifestDataset(manifest, "train", TrainTransform(24), seed=1)
    first = dataset[3]["crop"]
    assert torch.equal(ManifestDataset(manifest, "train", TrainTransform(24), seed=1)[3]["crop"], first)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[3]["crop"], first)


def test_colour_jitter_draws_from_the_image_generator_not_torch_global_one(tmp_path):
    """The same image gets the same jittered pixels in any process, whatever torch's global seed, on both paths."""
    manifest = synthetic_manifest(tmp_path / "images", per_class=(2, 0, 0))
    transform = TrainTransform(24, color_jitter=0.4)
    torch.manual_seed(1)
    first = ManifestDataset(manifest, "train", transform, seed=5)[2]["pixels"]
    torch.manual_seed(2)
    again = ManifestDataset(manifest, "train", transform, seed=5)[2]["pixels"]
    plain = ManifestDataset(manifest, "train", TrainTransform(24), seed=5)[2]["pixels"]
    on_device = ManifestDataset(manifest, "train", transform, seed=5, decode="device")
    device_pixels = decode_batch_on_device(collate([on_device[2]]), on_device, torch.device("cpu"))["pixels"][0]

    assert torch.equal(first, again)
    assert not torch.equal(first, plain)  # the jitter did change the colours
    assert (first.float() - device_pixels.float()).abs().mean() < 3  # same factors; decoders differ by a grey level


def test_ranks_together_cover_the_single_process_batches_and_resume_skips_batches():
    single = list(EpochBatchSampler(20, 8, shuffle=True, seed=4))
    ranks = [list(EpochBatchSampler(20, 4, shuffle=True, seed=4, rank=r, world_size=2)) for r in range(2)]
    assert [sorted(a + b) for a, b in zip(*ranks)] == [sorted(batch) for batch in single]

    resumed = EpochBatchSampler(20, 8, shuffle=True, seed=4)
    resumed.set_epoch(0, skip_batches=2)
    assert list(resumed) == single[2:] and len(resumed) == 1


def test_preresize_shrinks_images_and_keeps_targets(tmp_path):
    manifest = synthetic_manifest(tmp_path / "images", per_class=(1, 1, 0), size=(80, 64))
    smaller = preresize(manifest, tmp_path / "small", short_side=32)
    path = manifest_module.write(smaller, tmp_path / "manifests")

    read = manifest_module.read(path)
    with Image.open(read.image[0]) as image:
        assert image.size == (40, 32)
    assert np.array_equal(read.point, manifest.point) and np.array_equal(read.box, manifest.box)
    assert read.source["preresized_from"] == manifest.content_hash and read.source["short_side"] == 32
