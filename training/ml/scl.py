"""Seed 003's spatial consistency loss (method ``scl``): a multi-label classifier trained from ONE label per
image (the class of the first icon a worker placed, COCO-style), with per-image class heatmaps kept across epochs
as soft spatial targets.

- The model is the ``patch`` model: per-cell class logits, averaged for the image logits (seed 003 section J).
- Classification: binary cross-entropy with the single positive and every other class assumed negative.
- Heatmaps (``HeatmapStore``): per train image and kept class, an exponential moving average (``scl_momentum``)
  of the sigmoid of its spatial logits, in the whole image's frame at 2x the feature-map resolution, stored as
  uint8 (value x 255). Only ``scl_top_k`` classes are kept per image (10 in the paper): the annotated one plus the
  highest-scoring others of the current prediction; the heatmaps of the other classes count as 0. So memory is
  rows x k x (2G)^2 bytes (+ 2 bytes per kept class) instead of rows x classes x (2G)^2.
- The loss term: mean squared difference between each cell's sigmoid and the heatmap resampled to the current
  crop (mirrored with it); a kept class that has no heatmap yet is left out. lambda (default 1) weighs it.
- The store is saved in the checkpoint (``state_dict``), so a resumed run continues with the same heatmaps.
"""
import numpy as np
import torch
import torch.nn.functional as F

from training.ml.data import crops_of

FREE = -1


class HeatmapStore:
    """uint8 heatmaps of the top-k classes of every train row; see the module docstring."""

    def __init__(self, rows, num_classes, size, top_k=10):
        self.rows = np.asarray(rows)
        self.position = {int(row): i for i, row in enumerate(self.rows)}
        self.num_classes, self.size = num_classes, size
        k = min(top_k, num_classes)
        self.classes = torch.full((len(self.rows), k), FREE, dtype=torch.int16)
        self.seen = torch.zeros((len(self.rows), k), dtype=torch.bool)
        self.maps = torch.zeros((len(self.rows), k, size, size), dtype=torch.uint8)

    @property
    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in (self.classes, self.seen, self.maps))

    @property
    def dense_nbytes(self):
        """What uint8 heatmaps of every class would take."""
        return len(self.rows) * self.num_classes * self.size * self.size

    def state_dict(self):
        return {"rows": self.rows, "size": self.size, "classes": self.classes, "seen": self.seen, "maps": self.maps}

    def load_state_dict(self, state):
        if state["size"] != self.size or not np.array_equal(state["rows"], self.rows):
            raise ValueError("scl: the checkpoint's heatmaps are for other rows or another resolution")
        self.classes, self.seen, self.maps = state["classes"], state["seen"], state["maps"]

    def keep(self, position, annotated, scores):
        """Re-select the kept classes of one row: the annotated ones, then the highest scores; returns slots."""
        k = self.classes.shape[1]
        ranked = [int(c) for c in annotated] + [int(c) for c in np.argsort(-scores) if c not in set(annotated)]
        wanted = ranked[:k]
        current = self.classes[position].tolist()
        for slot, kept_class in enumerate(current):
            if kept_class != FREE and kept_class not in wanted:
                self.classes[position, slot], self.seen[position, slot] = FREE, False
        current = self.classes[position].tolist()
        for new_class in (c for c in wanted if c not in current):
            slot = current.index(FREE)
            current[slot] = new_class
            self.classes[position, slot] = new_class
        return current

    def targets(self, rows, crops, grid_size, device):
        """(targets (B, C, G, G) in [0, 1], mask (B, C): False for a kept class without a heatmap yet)."""
        targets = torch.zeros((len(rows), self.num_classes, grid_size, grid_size))
        mask = torch.ones((len(rows), self.num_classes), dtype=torch.bool)
        for b, (row, crop) in enumerate(zip(rows, crops)):
            position = self.position[int(row)]
            slots = torch.nonzero(self.classes[position] != FREE).flatten()
            if not len(slots):
                continue
            classes = self.classes[position, slots].long()
            sampled = F.grid_sample(
                self.maps[position, slots].float().unsqueeze(0) / 255, crop_grid(crop, grid_size, grid_size),
                align_corners=False, padding_mode="border",
            )[0]
            targets[b, classes] = sampled
            mask[b, classes] = self.seen[position, slots]
        return targets.to(device), mask.to(device)

    @torch.no_grad()
    def update(self, rows, crops, probabilities, annotated, momentum):
        """Fold (B, C, G, G) probabilities of the current crops into the heatmaps (EMA; a new class starts at them)."""
        probabilities = probabilities.detach().float().cpu()
        cells = heatmap_cells(self.size)
        for b, (row, crop) in enumerate(zip(rows, crops)):
            position = self.position[int(row)]
            scores = probabilities[b].mean(dim=(1, 2)).numpy()
            slots_classes = self.keep(position, annotated[b], scores)
            u, v, inside = crop_coordinates(crop, cells)
            if not inside.any():
                continue
            grid = torch.stack([2 * u - 1, 2 * v - 1], dim=-1).view(1, self.size, self.size, 2)
            for slot, kept_class in enumerate(slots_classes):
                if kept_class == FREE:
                    continue
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

    def loss(self, spatial_logits, labels, context):
        """Mean squared difference of the cells' sigmoids to the heatmaps; then the heatmaps take this step in."""
        grid_size = spatial_logits.shape[-1]
        if self.store is None:
            self.store = HeatmapStore(self.rows, self.num_classes, 2 * grid_size, self.top_k)
            if self._pending_state is not None:
                self.store.load_state_dict(self._pending_state)
        rows, crops = context["row"].tolist(), crops_of(context)
        probabilities = spatial_logits.float().sigmoid()
        targets, mask = self.store.targets(rows, crops, grid_size, spatial_logits.device)
        squared = ((probabilities - targets) ** 2).mean(dim=(2, 3))
        term = (squared * mask).sum() / mask.sum().clamp(min=1)
        annotated = [torch.nonzero(row > 0).flatten().tolist() for row in labels.cpu()]
        self.store.update(rows, crops, probabilities, annotated, self.momentum)
        return term
