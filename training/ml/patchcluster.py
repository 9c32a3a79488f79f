"""PatchCluster (seed 001): class prototypes from annotated patches pseudo-label the patches of images without
clicks, for the ``patch`` method.

- prototypes: the mean feature of the feature-map cells that hold a click, per class (ImageNet-style: the image's
  class; COCO-style: the icon's class), computed over the train rows with clicks under the evaluation transform at
  the start of every epoch after the first (they are saved in the checkpoint, so a resumed epoch uses the same);
- pseudo-labels of a row without any click: a cell at cosine distance <= d+ from a class prototype is a positive
  for that class; an image whose every cell is at distance > d- is a negative for the class (0 <= d+ < d- <= 1);
- the product's images keep their labels (they come from the dataset, not from the clicks), so a positive counts
  only for a class the image has, and a negative only restates an absent class: PatchCluster adds cell targets to
  the images the crowd has not clicked on yet. The counts of both are reported per epoch.
"""
import torch
import torch.nn.functional as F

from training.ml.losses import focal_term
from training.ml.transforms import normalize


def cosine_distance(grid, prototypes):
    """(B, D, H, W) features x (C, D) prototypes -> (B, C, H, W) 1 - cosine similarity (inf for a NaN prototype)."""
    similarity = torch.einsum("bdhw,cd->bchw", F.normalize(grid.float(), dim=1),
                              F.normalize(torch.nan_to_num(prototypes.float()), dim=1))
    missing = torch.isnan(prototypes).any(dim=1).view(1, -1, 1, 1)
    return torch.where(missing, torch.inf, 1 - similarity)


def pseudo_labels(grid, prototypes, d_positive, d_negative):
    """(positive cells (B, C, H, W) bool, negative images (B, C) bool) of seed 001's rule."""
    distance = cosine_distance(grid, prototypes)
    return distance <= d_positive, (distance > d_negative).flatten(2).all(dim=2)


def cell_of(points, height, width):
    """(..., 2) point fractions -> (row, column) indices of the feature cell holding each point."""
    columns = (points[..., 0] * width).long().clamp(0, width - 1)
    rows = (points[..., 1] * height).long().clamp(0, height - 1)
    return rows, columns


@torch.no_grad()
def class_prototypes(model, loader, device, num_classes, multi_label):
    """(C, D) mean feature of the clicked cells per class (NaN rows for classes without any click)."""
    model.eval()
    sums, counts = None, torch.zeros(num_classes, dtype=torch.float64)
    for batch in loader:
        images = normalize(batch["pixels"].to(device))
        grid = model.spatial_features(model.backbone.forward_features(images)).float().cpu()
        if sums is None:
            sums = torch.zeros(num_classes, grid.shape[1], dtype=torch.float64)
        rows, columns = cell_of(batch["points"], grid.shape[2], grid.shape[3])
        for b in range(len(grid)):
            for slot in torch.nonzero(batch["weights"][b] > 0).flatten().tolist():
                slot_class = slot if multi_label else int(batch["label"][b])
                sums[slot_class] += grid[b, :, rows[b, slot], columns[b, slot]].double()
                counts[slot_class] += 1
    prototypes = sums / counts.clamp(min=1).unsqueeze(1)
    prototypes[counts == 0] = float("nan")
    return prototypes.float()


class PatchCluster:
    """Holds the current prototypes and turns a batch's features into the extra patch-loss term."""

    def __init__(self, d_positive, d_negative, gamma=2.0):
        self.d_positive, self.d_negative, self.gamma = d_positive, d_negative, gamma
        self.prototypes = None
        self.positive_cells = self.negative_labels = 0  # this epoch's pseudo-labels (this process's share)

    def loss(self, output, labels, weights, multi_label):
        """Focal loss of the pseudo-positive cells of the rows without clicks (0 before the first prototypes)."""
        spatial_logits = output["spatial_logits"]
        zero = spatial_logits.new_zeros((), dtype=torch.float32)
        unclicked = weights.sum(dim=1) == 0
        if self.prototypes is None or not unclicked.any():
            return zero
        grid = output["grid"][unclicked].detach()
        positive, negative = pseudo_labels(grid, self.prototypes.to(grid.device), self.d_positive, self.d_negative)
        present = labels[unclicked] > 0 if multi_label else F.one_hot(labels[unclicked], positive.shape[1]).bool()
        positive &= present[:, :, None, None]
        negative &= ~present
        self.negative_labels += int(negative.sum())
        self.positive_cells += int(positive.sum())
        if not positive.any():
            return zero
        logits = spatial_logits[unclicked].float()[positive]
        return focal_term(logits, positive=True, gamma=self.gamma).mean()

