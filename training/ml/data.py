"""Datasets and loaders over a manifest.

Two ways to decode, chosen by ``decode``:
- ``"pil"`` (default): DataLoader workers read and decode with Pillow and apply the point-aware transforms;
  batches arrive as uint8 tensors.
- ``"device"``: workers only read the file bytes; the training process decodes the whole batch with
  ``torchvision.io.decode_jpeg(..., device=...)`` (nvJPEG on a GPU) and applies the same transforms to the
  decoded tensors on the device. On a GPU this takes decoding off the CPU (PRODUCT.md section 7: a CPU
  loader leaves the GPU about a quarter idle); on the CPU it works the same, only without the speed-up.
  Non-JPEG files are decoded on the CPU.
A third option reduces CPU decoding cost instead: ``preresize`` writes a copy of a manifest's images with the
shorter side resized (random-resized-crop of a 2-4x smaller JPEG is that much cheaper) and returns the
manifest that points at them; its boxes and points, being fractions, are unchanged.

Randomness of the augmentations comes from a generator seeded by (seed, epoch, image row), so a run is
reproducible and the same image gets the same crop whether it is loaded by one process or by several.
"""
import functools
import io
import math
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from training.ml import manifest as manifest_module
from training.ml.transforms import Crop

DECODE_MODES = ("pil", "device")


def read_image_bytes(location):
    """Bytes of a manifest image: a local path, or s3://bucket/key (boto3, endpoint from AWS_S3_ENDPOINT_URL)."""
    if location.startswith("s3://"):
        parsed = urlparse(location)
        return s3_client().get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    return Path(location).read_bytes()


@functools.lru_cache(maxsize=1)
def s3_client():
    """One client per loader process (boto3 is only needed for object storage)."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_S3_ENDPOINT_URL") or None)


class ManifestDataset(torch.utils.data.Dataset):
    """The entries of one split. Items: pixels (or file bytes), label, points, weights, crop, row."""

    def __init__(self, manifest, split, transform, seed=0, decode="pil"):
        if decode not in DECODE_MODES:
            raise ValueError(f"decode: {decode!r} is not one of {', '.join(DECODE_MODES)}")
        self.manifest, self.split, self.transform = manifest, split, transform
        self.rows = manifest.indices(split)
        self.seed, self.epoch, self.decode = seed, 0, decode

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.rows)

    def rng(self, row):
        return np.random.default_rng([self.seed, self.epoch, int(row)])

    def __getitem__(self, position):
        row = int(self.rows[position])
        data = read_image_bytes(str(self.manifest.image[row]))
        points, weights = self.manifest.point[row], self.manifest.point_weight[row]
        label = self.manifest.label[row]
        item = {
            "row": row,
            "label": torch.as_tensor(label, dtype=torch.float32 if self.manifest.multi_label else torch.int64),
        }
        if self.decode == "device":
            item.update(data=torch.frombuffer(bytearray(data), dtype=torch.uint8), points=points, weights=weights)
            return item
        with Image.open(io.BytesIO(data)) as image:
            pixels, moved, kept, crop = self.transform(image, points, weights, self.rng(row))
        item.update(
            pixels=pixels, points=torch.from_numpy(moved), weights=torch.from_numpy(kept),
            crop=torch.from_numpy(crop.as_array()),
        )
        return item


def collate(items):
    """Stack tensors; file bytes of the device-decode path stay a list (different lengths)."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key == "data" or isinstance(values[0], np.ndarray):
            batch[key] = values
        elif key == "row":
            batch[key] = torch.as_tensor(values)
        else:
            batch[key] = torch.stack(values)
    return batch


def decode_batch_on_device(batch, dataset, device):
    """Device-decode path: decode a batch's JPEG bytes on device, then crop/flip each image and move its points."""
    jpeg = [data for data in batch["data"] if data[:2].tolist() == [0xFF, 0xD8]]
    decoded = iter(decode_jpeg(jpeg, mode=ImageReadMode.RGB, device=device) if jpeg else [])
    pixels, points, weights, crops = [], [], [], []
    for data, row, row_points, row_weights in zip(batch["data"], batch["row"], batch["points"], batch["weights"]):
        if data[:2].tolist() == [0xFF, 0xD8]:
            image = next(decoded)
        else:
            image = decode_image(data, mode=ImageReadMode.RGB).to(device)
        image_pixels, moved, kept, crop = dataset.transform(image, row_points, row_weights, dataset.rng(int(row)))
        pixels.append(image_pixels)
        points.append(torch.from_numpy(moved))
        weights.append(torch.from_numpy(kept))
        crops.append(torch.from_numpy(crop.as_array()))
    return dict(
        batch, pixels=torch.stack(pixels), points=torch.stack(points), weights=torch.stack(weights),
        crop=torch.stack(crops),
    )


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of this process's share of a (shuffled) epoch, resumable mid-epoch.

    The epoch order is a permutation seeded by (seed, epoch), padded by wrapping to a multiple of world_size;
    rank r takes every world_size-th index starting at r. So with batch size b per process, step i of all ranks
    together covers the same images as step i of one process with batch size b x world_size.
    ``skip_batches`` drops the first batches (resuming an interrupted epoch).
    """

    def __init__(self, length, batch_size, shuffle, seed=0, rank=0, world_size=1, pad=True):
        self.length, self.batch_size, self.shuffle = length, batch_size, shuffle
        self.seed, self.rank, self.world_size, self.pad = seed, rank, world_size, pad
        self.epoch, self.skip_batches = 0, 0

    def set_epoch(self, epoch, skip_batches=0):
        self.epoch, self.skip_batches = epoch, skip_batches

    def indices(self):
        order = np.arange(self.length)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        if self.pad and self.length % self.world_size:
            order = np.resize(order, math.ceil(self.length / self.world_size) * self.world_size)
        return order[self.rank::self.world_size]

    def __iter__(self):
        indices = self.indices()
        for start in range(self.skip_batches * self.batch_size, len(indices), self.batch_size):
            yield indices[start:start + self.batch_size].tolist()

    def __len__(self):
        return max(0, math.ceil(len(self.indices()) / self.batch_size) - self.skip_batches)


class BalancedBatchSampler(EpochBatchSampler):
    """Seed 004's balanced mini-batches: half of each batch (rounded down) from the labelled positions, the rest
    from the others, each side in its own seeded order for the epoch, the smaller side repeated as needed.

    An epoch is as many batches as the larger side needs to be seen once; with one side empty every batch comes
    from the other. labelled: (N,) bool per dataset position. Distributed: rank r takes every world_size-th
    labelled and unlabelled index of the epoch order, so batch_size stays per process; resumable like its parent.
    """

    def __init__(self, labelled, batch_size, seed=0, rank=0, world_size=1):
        super().__init__(len(labelled), batch_size, shuffle=True, seed=seed, rank=rank, world_size=world_size)
        self.labelled = np.flatnonzero(labelled)
        self.unlabelled = np.flatnonzero(~np.asarray(labelled, bool))

    def indices(self):
        sides = [side for side in (self.labelled, self.unlabelled) if len(side)]
        if len(sides) == 1:
            order = sides[0][np.random.default_rng([self.seed, self.epoch, 0]).permutation(len(sides[0]))]
            padded = np.resize(order, math.ceil(len(order) / self.world_size) * self.world_size)
            return padded[self.rank::self.world_size]
        half = self.batch_size // 2
        shares = (half, self.batch_size - half)
        steps = max(math.ceil(len(side) / (share * self.world_size)) for side, share in zip(sides, shares))
        columns = []
        for number, (side, share) in enumerate(zip(sides, shares)):
            order = side[np.random.default_rng([self.seed, self.epoch, number]).permutation(len(side))]
            mine = np.resize(order, steps * share * self.world_size)[self.rank::self.world_size]
            columns.append(mine.reshape(steps, share))
        return np.concatenate(columns, axis=1).reshape(-1)


def make_loader(dataset, sampler, workers=0, pin_memory=False):
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
        persistent_workers=False,
    )


def preresize(manifest, out_dir, short_side, quality=90):
    """Copy the images with the shorter side resized to short_side (never upscaled); return the new Manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    locations = []
    for row, location in enumerate(manifest.image):
        target = out_dir / f"{row:07d}.jpg"
        if not target.exists():
            with Image.open(io.BytesIO(read_image_bytes(str(location)))) as image:
                image = image.convert("RGB")
                scale = short_side / min(image.size)
                if scale < 1:
                    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
                image.save(target, quality=quality)
        locations.append(str(target.resolve()))
    arrays = dict(manifest.arrays(), image=np.asarray(locations, dtype=str))
    source = dict(manifest.source, preresized_from=manifest.content_hash, short_side=short_side)
    return manifest_module.Manifest(kind=manifest.kind, class_names=manifest.class_names, source=source, **arrays)


def crops_of(batch):
    return [Crop.from_array(values) for values in batch["crop"].cpu().numpy()]
