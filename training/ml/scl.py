"""Seed 003's spatial consistency loss (method ``scl``): a multi-label classifier trained from ONE label per
image (the class of the first icon a worker placed, COCO-style), with per-image class heatmaps kept across epochs
as soft spatial targets.

What the seed (the paper's supplement) fixes, followed here:

- Augmentation (supplement A, MS-COCO): the image resized to a square of 1.5 x the train size (672 for 448), a
  random SQUARE crop of 0.25-1 of its area, resized to the train size, random horizontal flip; at test time the
  whole image resized to a square. ``SquareResizedCrop`` samples that crop in the image's own frame, where a
  square of the resized image is a crop of the image's aspect ratio (the intermediate 672 px resample is not
  made: it changes only the resampling, not which pixels the crop holds); ``SquareResize`` is the test transform.
  The area range is the run's ``crop_scale`` (the paper's 0.25-1 for COCO: pass ``crop_scale=[0.25, 1]``).
- Heatmaps (supplement G, ``HeatmapStore``): per train image and kept class, an exponential moving average
  (``scl_momentum``) of the sigmoid of its spatial logits, in the whole image's frame at 2x the feature-map
  resolution, stored as uint8 (value x 255).
- Top-k (supplement G): the kept classes are chosen ONCE per image from its per-class EMA scores ``s_n`` (eq. 4:
  a moving average of the image's class scores, with the same momentum), after ``SELECT_AFTER_EPOCHS`` epochs (the
  paper: after 5 epochs of pretraining the linear layer; here the first epoch is that warm-up): the annotated
  class, then the highest EMA scores, ``scl_top_k`` in all (10 in the paper). "Heatmaps of other classes are
  assumed to be uniformly 0." Memory: rows x k x (2G)^2 bytes for the maps (+ 2 bytes a kept class, 1 a seen flag)
  and rows x (classes + 1) x 2 bytes for the float16 EMA scores and update counts, instead of rows x classes x
  (2G)^2.

Where the supplement leaves the method ambiguous (its eq. (4) and (8) are in the main paper, not in the seed), this
is the product's reading, chosen and documented here:

- Classification is the Expected Negative loss (EN, "eq. (8)"), not "assume negative": binary cross-entropy over
  the annotated positive and the EXPECTED NEGATIVES only, averaged over those entries. Before an image's top-k are
  chosen every other class counts as negative (the warm-up); afterwards the expected negatives are the classes
  outside its top-k (the ones whose heatmaps count as 0), and the other kept classes are left out of the
  cross-entropy: they are supervised only through their heatmaps.
- The spatial term: mean squared difference between each cell's sigmoid and the heatmap resampled to the current
  crop (mirrored with it), over the classes of images whose top-k are chosen (a kept class without a heatmap yet is
  left out; classes outside the top-k have target 0). Before the choice an image has no spatial term. lambda
  (default 1) weighs it.
- An image's score for the EMA is the mean of its cells' sigmoids on the current crop.

The store is saved in the checkpoint (``state_dict``), so a resumed run continues with the same heatmaps.
"""
import numpy as np
import torch
import torch.nn.functional as F

from training.ml.data import crops_of
from training.ml.transforms import Crop, TrainTransform, crop_and_resize, image_size, sample_random_resized_crop

FREE = -1
SELECT_AFTER_EPOCHS = 1  # the warm-up: an image's top-k classes are chosen at its first update after this many


class SquareResizedCrop(TrainTransform):
    """Seed 003's COCO train augmentation: a random square crop of the image resized to a square (area fraction in
    scale), i.e. a crop of the image's own aspect ratio (the run's crop_ratio is not used), resized to
    img_size x img_size; flip; colour jitter."""

    def sample_crop(self, width, height, rng):
        aspect = width / height
        return sample_random_resized_crop(width, height, rng, self.scale, (aspect, aspect), self.hflip)


class SquareResize:
    """Seed 003's COCO test transform: the whole image resized to img_size x img_size."""

    def __init__(self, img_size):
        self.img_size = img_size

    def __call__(self, image, points, weights, rng=None):
        width, height = image_size(image)
        crop = Crop(0, 0, width, height, width, height, False)
        return (crop_and_resize(image, crop, self.img_size), *crop.apply_to_points(points, weights), crop)


class HeatmapStore:
    """uint8 heatmaps of the top-k classes of every train row and the rows' EMA class scores; see the module
    docstring."""

    def __init__(self, rows, num_classes, size, top_k=10):
        self.rows = np.asarray(rows)
        self.position = {int(row): i for i, row in enumerate(self.rows)}
        self.num_classes, self.size = num_classes, size
        k = min(top_k, num_classes)
        self.classes = torch.full((len(self.rows), k), FREE, dtype=torch.int16)
        self.seen = torch.zeros((len(self.rows), k), dtype=torch.bool)
        self.maps = torch.zeros((len(self.rows), k, size, size), dtype=torch.uint8)
        self.scores = torch.zeros((len(self.rows), num_classes), dtype=torch.float16)
        self.updates = torch.zeros(len(self.rows), dtype=torch.int16)  # updates seen per row (epochs)

    @property
    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in (self.classes, self.seen, self.maps, self.scores,
                                                          self.updates))

    @property
    def dense_nbytes(self):
        """What uint8 heatmaps of every class would take."""
        return len(self.rows) * self.num_classes * self.size * self.size

    def state_dict(self):
        return {"rows": self.rows, "size": self.size, "classes": self.classes, "seen": self.seen, "maps": self.maps,
                "scores": self.scores, "updates": self.updates}

    def load_state_dict(self, state):
        if state["size"] != self.size or not np.array_equal(state["rows"], self.rows):
            raise ValueError("scl: the checkpoint's heatmaps are for other rows or another resolution")
        self.classes, self.seen, self.maps = state["classes"], state["seen"], state["maps"]
        self.scores, self.updates = state["scores"], state["updates"]

    def chosen(self, position):
        """Whether the row's top-k classes are chosen (the annotated class always takes the first slot)."""
        return bool(self.classes[position, 0] != FREE)

    def choose(self, position, annotated):
        """Fix the row's kept classes once: the annotated ones, then the highest EMA scores."""
        scores = self.scores[position].float().numpy()
        ranked = [int(c) for c in annotated] + [int(c) for c in np.argsort(-scores, kind="stable")
                                                 if c not in set(annotated)]
        self.classes[position] = torch.tensor(ranked[:self.classes.shape[1]], dtype=torch.int16)

    def expected_negatives(self, rows, labels):
        """(B, C) weights of the cross-entropy: 1 for the annotated classes and the expected negatives, 0 for the
        kept, unannotated classes of rows whose top-k are chosen."""
        weights = torch.ones(labels.shape, dtype=torch.float32)
        for b, row in enumerate(rows):
            position = self.position[int(row)]
            if self.chosen(position):
                weights[b, self.classes[position].long()] = 0.0
        return torch.maximum(weights, (labels.cpu() > 0).float())

    def targets(self, rows, crops, grid_size, device):
        """(targets (B, C, G, G) in [0, 1], mask (B, C)): classes outside the top-k have target 0; a kept class
        without a heatmap yet and every class of a row whose top-k are not chosen are masked out."""
        targets = torch.zeros((len(rows), self.num_classes, grid_size, grid_size))
        mask = torch.zeros((len(rows), self.num_classes), dtype=torch.bool)
        for b, (row, crop) in enumerate(zip(rows, crops)):
            position = self.position[int(row)]
            if not self.chosen(position):
                continue
            classes = self.classes[position].long()
            sampled = F.grid_sample(
                self.maps[position].float().unsqueeze(0) / 255, crop_grid(crop, grid_size, grid_size),
                align_corners=False, padding_mode="border",
            )[0]
            targets[b, classes] = sampled
            mask[b] = True
            mask[b, classes] = self.seen[position]
        return targets.to(device), mask.to(device)

    @torch.no_grad()
    def update(self, rows, crops, probabilities, annotated, momentum):
        """Fold (B, C, G, G) probabilities of the current crops into the EMA scores, choose the top-k of rows past
        the warm-up, and fold the kept classes into their heatmaps (EMA; a new heatmap starts at the crop's)."""
        probabilities = probabilities.detach().float().cpu()
        cells = heatmap_cells(self.size)
        for b, (row, crop) in enumerate(zip(rows, crops)):
            position = self.position[int(row)]
            scores = probabilities[b].mean(dim=(1, 2))
            if self.updates[position]:
                scores = momentum * self.scores[position].float() + (1 - momentum) * scores
            self.scores[position] = scores.half()
            self.updates[position] += 1
            if not self.chosen(position):
                if self.updates[position] <= SELECT_AFTER_EPOCHS:
                    continue
                self.choose(position, annotated[b])
            u, v, inside = crop_coordinates(crop, cells)
            if not inside.any():
                continue
            grid = torch.stack([2 * u - 1, 2 * v - 1], dim=-1).view(1, self.size, self.size, 2)
            for slot, kept_class in enumerate(self.classes[position].tolist()):
                current = F.grid_sample(probabilities[b, kept_class][None, None], grid, align_corners=False,
                                        padding_mode="border")[0, 0]
                old = self.maps[position, slot].float() / 255
                blended = momentum * old + (1 - momentum) * current if self.seen[position, slot] else current
                self.maps[position, slot] = torch.where(inside, (blended * 255).round(), old * 255).to(torch.uint8)
                self.seen[position, slot] = True


def heatmap_cells(size):
    """(size, size, 2) centres (x, y) of the heatmap cells as fractions of the whole image."""
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x, y], dim=-1)


def crop_coordinates(crop, cells):
    """Where image-fraction points fall in the crop's frame: (u, v) fractions (mirrored with the crop), inside."""
    u = (cells[..., 0] * crop.source_width - crop.left) / crop.width
    v = (cells[..., 1] * crop.source_height - crop.top) / crop.height
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    return (1 - u if crop.flip else u), v, inside


def crop_grid(crop, height, width):
    """grid_sample grid (1, H, W, 2) that reads a whole-image map at the centres of the crop's H x W cells."""
    v = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    u = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    if crop.flip:
        u = 1 - u
    x = (crop.left + u * crop.width) / crop.source_width
    y = (crop.top + v * crop.height) / crop.source_height
    grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([2 * grid_x - 1, 2 * grid_y - 1], dim=-1).unsqueeze(0)


class SpatialConsistency:
    """The loss term and the heatmap updates of one run; the store is made at the first batch (G known then)."""

    def __init__(self, rows, num_classes, top_k=10, momentum=0.9):
        self.rows, self.num_classes, self.top_k, self.momentum = rows, num_classes, top_k, momentum
        self.store = None
        self._pending_state = None

    def state_dict(self):
        return self.store.state_dict() if self.store is not None else self._pending_state

    def load_state_dict(self, state):
        self._pending_state = state

    def loss(self, logits, spatial_logits, labels, context):
        """(the Expected Negative cross-entropy, the spatial term: mean squared difference of the cells' sigmoids to
        the heatmaps); then the scores and heatmaps take this step in."""
        grid_size = spatial_logits.shape[-1]
        if self.store is None:
            self.store = HeatmapStore(self.rows, self.num_classes, 2 * grid_size, self.top_k)
            if self._pending_state is not None:
                self.store.load_state_dict(self._pending_state)
        rows, crops = context["row"].tolist(), crops_of(context)
        weights = self.store.expected_negatives(rows, labels).to(logits.device)
        terms = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
        classification = (terms * weights).sum() / weights.sum().clamp(min=1)
        probabilities = spatial_logits.float().sigmoid()
        targets, mask = self.store.targets(rows, crops, grid_size, spatial_logits.device)
        squared = ((probabilities - targets) ** 2).mean(dim=(2, 3))
        spatial = (squared * mask).sum() / mask.sum().clamp(min=1)
        annotated = [torch.nonzero(row > 0).flatten().tolist() for row in labels.cpu()]
        self.store.update(rows, crops, probabilities, annotated, self.momentum)
        return classification, spatial
