"""A timm backbone with a classifier and, depending on the method, a way to predict points.

Methods (``METHODS``):
- ``baseline``: labels only. Its points, for the localisation metric, are the peak of the class activation
  map (the classifier applied to every feature-map cell), so every method is scored the same way.
- ``luab``: seed 000's multi-task model: a point-regression head (a linear layer, 2 outputs per point slot)
  on the pooled features, trained with the masked point loss.
- ``attentive``: seed 000 Table C, point-guided pooling: a 1x1 convolution scores every feature-map cell per
  point slot; the softmax of those scores pools the features, the pooled features are averaged with the
  global average, and the soft-argmax of the same scores is the predicted point, so the point loss teaches
  the pooling to look where the workers clicked.
- ``patch``: seed 001 (PatchML), the patch-level point loss: the classifier scores every cell (spatial
  logits, averaged for the image logits); the cell under each click is a positive for its class and every cell
  is a negative for classes absent from the image. Its points are the peak of the class's spatial logits.
- ``scl``: seed 003 (spatial consistency loss), the same per-cell logits trained from one label per image with
  class heatmaps kept across epochs as soft targets (training/ml/scl.py).

Point slots: 1 for ImageNet-style (one click per image, class-agnostic), one per class for COCO-style.

Feature-map size: every method's points come from the last feature map, so a map of 2 x 2 cells (a stride-32
network at 64 px) can only point at quadrants. ``resolve_model_kwargs`` measures the map the model gives at the
training resolution and, when it has fewer than ``min_feature_cells`` cells a side and the model takes an
``output_stride`` (timm's dilated CNNs), lowers the stride to 16, then 8; the result is recorded in the run's config.
"""
import logging

import timm
import torch
from torch import nn

logger = logging.getLogger(__name__)

METHODS = ("baseline", "luab", "attentive", "patch", "scl")


def create_backbone(name, checkpoint_path="", model_kwargs=None):
    """timm.create_model without downloads; optionally load backbone weights from a local file."""
    backbone = timm.create_model(name, pretrained=False, num_classes=0, **(model_kwargs or {}))
    if checkpoint_path:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        state = state.get("model", state.get("state_dict", state))
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        logger.info("loaded %s: %d missing, %d unexpected keys", checkpoint_path, len(missing), len(unexpected))
    return backbone


def spatial_features(backbone, features):
    """Backbone features as (B, D, H, W): CNN maps as they are, ViT tokens without prefix tokens as a grid."""
    if features.ndim == 4:
        if getattr(backbone, "output_fmt", "NCHW") == "NHWC":
            features = features.permute(0, 3, 1, 2)
        return features
    tokens = features[:, getattr(backbone, "num_prefix_tokens", 0):]
    side = int(round(tokens.shape[1] ** 0.5))
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)


@torch.no_grad()
def feature_map_side(backbone, img_size):
    """Cells along the shorter side of the backbone's last feature map for an img_size x img_size input."""
    backbone.eval()
    grid = spatial_features(backbone, backbone.forward_features(torch.zeros(1, 3, img_size, img_size)))
    return min(grid.shape[2], grid.shape[3])


def resolve_model_kwargs(name, img_size, min_feature_cells, model_kwargs=None):
    """model_kwargs plus the output_stride (16, then 8) that gives at least min_feature_cells cells a side, when
    the model has fewer and takes one; unchanged when output_stride is given or the model cannot dilate."""
    kwargs = dict(model_kwargs or {})
    if "output_stride" in kwargs:
        return kwargs
    with torch.random.fork_rng():  # probing must not move the random state the real model is built from
        side = feature_map_side(create_backbone(name, model_kwargs=kwargs), img_size)
        for stride in (16, 8):
            if side >= min_feature_cells:
                break
            try:
                dilated = create_backbone(name, model_kwargs={**kwargs, "output_stride": stride})
            except (TypeError, AssertionError):  # no such argument, or timm's assert on an unsupported stride
                break
            dilated_side = feature_map_side(dilated, img_size)
            if dilated_side <= side:
                break
            side, kwargs = dilated_side, {**kwargs, "output_stride": stride}
    if side < min_feature_cells:
        logger.warning("%s at %d px: last feature map %d cells a side (fewer than %d)", name, img_size, side,
                       min_feature_cells)
    return kwargs


class PointClassifier(nn.Module):
    def __init__(self, backbone, num_classes, point_slots, method="luab"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
        self.backbone, self.method = backbone, method
        self.num_classes, self.point_slots = num_classes, point_slots
        width = backbone.num_features
        self.classifier = nn.Linear(width, num_classes)
        self.point_head = nn.Linear(width, 2 * point_slots) if method == "luab" else None
        self.attention = nn.Conv2d(width, point_slots, kernel_size=1) if method == "attentive" else None

    def spatial_features(self, features):
        return spatial_features(self.backbone, features)

    def forward(self, images):
        """dict: logits (B, C); points (B, K, 2) or None; spatial_logits (B, C, H, W) for cell-level methods."""
        features = self.backbone.forward_features(images)
        if self.method in ("baseline", "luab"):
            pooled = self.backbone.forward_head(features, pre_logits=True)
            points = None
            if self.point_head is not None:
                points = self.point_head(pooled).view(-1, self.point_slots, 2)
            return {"logits": self.classifier(pooled), "points": points, "features": features}
        grid = self.spatial_features(features)
        if self.method in ("patch", "scl"):
            spatial_logits = torch.einsum("bdhw,cd->bchw", grid, self.classifier.weight)
            spatial_logits = spatial_logits + self.classifier.bias.view(1, -1, 1, 1)
            return {
                "logits": spatial_logits.mean(dim=(2, 3)), "points": None, "spatial_logits": spatial_logits,
                "features": features, "grid": grid,
            }
        scores = self.attention(grid)  # (B, K, H, W)
        weights = scores.flatten(2).softmax(dim=-1)  # (B, K, HW)
        attended = torch.einsum("bkn,bdn->bkd", weights, grid.flatten(2))
        pooled = 0.5 * (grid.mean(dim=(2, 3)).unsqueeze(1) + attended)  # (B, K, D)
        if self.point_slots == 1:
            logits = self.classifier(pooled[:, 0])
        else:  # one attention map per class: class c is scored on its own pooled features
            logits = torch.einsum("bcd,cd->bc", pooled, self.classifier.weight) + self.classifier.bias
        return {
            "logits": logits, "points": soft_argmax(weights, grid.shape[2], grid.shape[3]), "attention": scores,
            "features": features,
        }

    @torch.no_grad()
    def predict_points(self, output, labels):
        """Predicted points (B, K, 2) in the input's frame: the model's own, or each slot's class activation peak.

        labels: (B,) class indices (ImageNet-style: slot 0 is scored for the image's class) or (B, C) multi-hot.
        """
        if output.get("points") is not None:
            return output["points"].float()
        if "spatial_logits" in output:
            maps = output["spatial_logits"]
        else:
            grid = self.spatial_features(output["features"])
            maps = torch.einsum("bdhw,cd->bchw", grid, self.classifier.weight)
        if self.point_slots == 1:
            maps = maps[torch.arange(len(maps), device=maps.device), labels.long()].unsqueeze(1)
        return peak(maps.float())


def cell_centres(height, width, device):
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)  # (HW, 2)


def soft_argmax(weights, height, width):
    """Expected cell centre under (B, K, HW) weights -> (B, K, 2)."""
    return weights.float() @ cell_centres(height, width, weights.device)


def peak(maps):
    """Centre of the highest cell of each (B, K, H, W) map -> (B, K, 2)."""
    centres = cell_centres(maps.shape[2], maps.shape[3], maps.device)
    return centres[maps.flatten(2).argmax(dim=-1)]


def create_model(name, num_classes, point_slots, method, checkpoint_path="", model_kwargs=None):
    return PointClassifier(create_backbone(name, checkpoint_path, model_kwargs), num_classes, point_slots, method)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
