"""Point-aware image transforms: the crop and flip that move an image also move its point targets.

Every geometric transform here is one crop (``Crop``: a pixel rectangle of the source image, optionally
mirrored) followed by a resize to ``img_size`` x ``img_size``. Points are fractions (x, y) of the image;
a point maps into the crop's frame as ((x W - left) / width, (y H - top) / height), mirrored as 1 - x, and a
point that falls outside the crop gets weight 0 (the class label stays). ``Crop.to_source`` maps a
prediction in the crop's frame back to the source image, so localisation is scored against the original
boxes and masks.

Other augmentations:
- colour jitter (``color_jitter`` > 0): brightness, contrast and saturation factors drawn from [1 - s, 1 + s] and
  applied in a random order, like torchvision's ColorJitter, but drawn from the image's own generator (as the crop
  is) so a run is reproducible whatever the loader's processes; pixel values only, points are unaffected;
- mixup / cutmix: not offered; blending two images has no defined point target, so they would have to be off
  for the point loss anyway.

Images are PIL images or uint8 tensors (C, H, W) (the device-decode path); the output is a uint8 tensor
(C, img_size, img_size). Normalisation happens on the device, batched, in the engine.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Crop:
    """A pixel rectangle of a width x height source image, mirrored horizontally when flip is set."""

    left: int
    top: int
    width: int
    height: int
    source_width: int
    source_height: int
    flip: bool = False

    def apply_to_points(self, points, weights):
        """points (K, 2) as source fractions -> crop fractions; weights of points outside the crop become 0."""
        x = (points[:, 0] * self.source_width - self.left) / self.width
        y = (points[:, 1] * self.source_height - self.top) / self.height
        inside = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
        if self.flip:
            x = 1 - x
        moved = np.stack([x, y], axis=1).astype(np.float32)
        return moved, np.where(inside, weights, 0).astype(np.float32)

    def to_source(self, points):
        """points (..., 2) as crop fractions -> source image fractions (inverse of apply_to_points)."""
        x, y = points[..., 0], points[..., 1]
        if self.flip:
            x = 1 - x
        source_x = (self.left + x * self.width) / self.source_width
        source_y = (self.top + y * self.height) / self.source_height
        return np.stack([source_x, source_y], axis=-1)

    def as_array(self):
        return np.array(
            [self.left, self.top, self.width, self.height, self.source_width, self.source_height, self.flip],
            np.float32,
        )

    @classmethod
    def from_array(cls, values):
        left, top, width, height, source_width, source_height, flip = (float(v) for v in values)
        return cls(int(left), int(top), int(width), int(height), int(source_width), int(source_height), bool(flip))


def image_size(image):
    """(width, height) of a PIL image or a (C, H, W) tensor."""
    height, width = F.get_size(image)
    return width, height


def sample_random_resized_crop(width, height, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5):
    """torchvision's RandomResizedCrop sampling (area fraction in scale, log-uniform aspect ratio), seeded by rng."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    flip = bool(rng.random() < hflip)
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_width = int(round(math.sqrt(target_area * aspect)))
        crop_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(rng.integers(0, height - crop_height + 1))
            left = int(rng.integers(0, width - crop_width + 1))
            return Crop(left, top, crop_width, crop_height, width, height, flip)
    # Fallback, as torchvision: the central crop with the aspect ratio clamped into range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        crop_width, crop_height = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        crop_height, crop_width = height, int(round(height * ratio[1]))
    else:
        crop_width, crop_height = width, height
    return Crop((width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height, width, height, flip)


def center_crop(width, height, crop_ratio=0.875):
    """Evaluation crop: resize the shorter side to img_size / crop_ratio, take the centre img_size square."""
    side = max(1, int(round(min(width, height) * crop_ratio)))
    return Crop((width - side) // 2, (height - side) // 2, side, side, width, height, False)


class TrainTransform:
    """Random-resized crop + horizontal flip (points moved, points leaving the crop weighted 0) + colour jitter."""

    def __init__(self, img_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, color_jitter=0.0):
        self.img_size = img_size
        self.scale, self.ratio, self.hflip = tuple(scale), tuple(ratio), hflip
        self.color_jitter = color_jitter

    def __call__(self, image, points, weights, rng):
        crop = self.sample_crop(*image_size(image), rng)
        pixels = crop_and_resize(image, crop, self.img_size)
        if self.color_jitter > 0:
            pixels = jitter_colours(pixels, self.color_jitter, rng)
        return (pixels, *crop.apply_to_points(points, weights), crop)

    def sample_crop(self, width, height, rng):
        return sample_random_resized_crop(width, height, rng, self.scale, self.ratio, self.hflip)


COLOUR_ADJUSTMENTS = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)


def jitter_colours(pixels, strength, rng):
    """Brightness, contrast and saturation scaled by factors from [1 - strength, 1 + strength], in a random order."""
    factors = rng.uniform(max(0.0, 1 - strength), 1 + strength, size=len(COLOUR_ADJUSTMENTS))
    for index in rng.permutation(len(COLOUR_ADJUSTMENTS)):
        pixels = COLOUR_ADJUSTMENTS[index](pixels, float(factors[index]))
    return pixels


class EvalTransform:
    """Resize + centre crop; points are mapped the same way (and weighted 0 outside the centre crop)."""

    def __init__(self, img_size, crop_ratio=0.875):
        self.img_size, self.crop_ratio = img_size, crop_ratio

    def __call__(self, image, points, weights, rng=None):
        crop = center_crop(*image_size(image), self.crop_ratio)
        return (crop_and_resize(image, crop, self.img_size), *crop.apply_to_points(points, weights), crop)


def crop_and_resize(image, crop, img_size):
    """The crop's pixels resized to img_size x img_size (mirrored if crop.flip), as a uint8 (C, H, W) tensor."""
    if not isinstance(image, torch.Tensor):
        image = F.pil_to_tensor(image.convert("RGB"))
    pixels = F.resized_crop(image, crop.top, crop.left, crop.height, crop.width, [img_size, img_size], antialias=True)
    return F.horizontal_flip(pixels) if crop.flip else pixels


def normalize(batch, channels_last=False):
    """uint8 (B, C, H, W) -> float, ImageNet mean/std, on the batch's device."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1) * 255
    batch = (batch.float() - mean) / std
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch
