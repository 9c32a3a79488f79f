"""Classification loss + lambda x point loss, with targets of weight 0 ignored.

- classification: cross-entropy (single-label) or binary cross-entropy (multi-label);
- point loss (methods luab and attentive): Smooth-L1 (Huber, ``beta``, default 1) or MSE between predicted and
  target points, averaged over x and y, weighted per point and divided by the sum of the weights: a point of
  weight 0 (no click, or cropped away) contributes nothing, and a batch without points adds 0;
- patch loss (method patch, seed 001 eq. 2 in "ignore" mode): binary focal loss on the spatial logits: the cell
  containing each weighted point is a positive for the point's class, every cell is a negative for a class
  absent from the image, all other cells are ignored.

Default lambda (seed 000 section F): 10 for ImageNet-style; COCO-style 5 for small backbones (ResNet-18,
ViT-Ti: under 15M parameters) and 50 for larger ones.
"""
import torch
import torch.nn.functional as F

POINT_LOSSES = ("smooth_l1", "mse")
SMALL_BACKBONE_PARAMETERS = 15_000_000


def default_lambda(kind, backbone_parameters):
    if kind == "imagenet":
        return 10.0
    return 5.0 if backbone_parameters < SMALL_BACKBONE_PARAMETERS else 50.0


def classification_loss(logits, labels, multi_label, label_smoothing=0.0):
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def masked_point_loss(predicted, target, weights, kind="smooth_l1", beta=1.0):
    """predicted, target (B, K, 2), weights (B, K) -> weighted mean over points with weight > 0 (0 if none)."""
    predicted, target = predicted.float(), target.float()
    if kind == "smooth_l1":
        per_coordinate = F.smooth_l1_loss(predicted, target, beta=beta, reduction="none")
    elif kind == "mse":
        per_coordinate = F.mse_loss(predicted, target, reduction="none")
    else:
        raise ValueError(f"point_loss: {kind!r} is not one of {', '.join(POINT_LOSSES)}")
    per_point = per_coordinate.mean(dim=-1)
    return (per_point * weights).sum() / weights.sum().clamp(min=1e-6)


def patch_point_loss(spatial_logits, points, weights, labels, multi_label, gamma=2.0):
    """Seed 001's patch-level loss. spatial_logits (B, C, H, W); points (B, K, 2); weights (B, K)."""
    batch, classes, height, width = spatial_logits.shape
    logits = spatial_logits.float()
    if multi_label:
        point_class = torch.arange(classes, device=logits.device).expand(batch, classes)
        present = labels > 0
    else:
        point_class = labels.view(batch, 1)
        present = F.one_hot(labels, classes).bool()
    cell_x = (points[..., 0] * width).long().clamp(0, width - 1)
    cell_y = (points[..., 1] * height).long().clamp(0, height - 1)
    rows = torch.arange(batch, device=logits.device).view(batch, 1).expand_as(point_class)
    positive_logits = logits[rows, point_class, cell_y, cell_x]  # (B, K)
    positive = focal_term(positive_logits, positive=True, gamma=gamma)
    positive_loss = (positive * weights).sum() / weights.sum().clamp(min=1e-6)
    negative = focal_term(logits, positive=False, gamma=gamma).mean(dim=(2, 3))  # (B, C)
    absent = (~present).float()
    negative_loss = (negative * absent).sum() / absent.sum().clamp(min=1)
    return positive_loss + negative_loss


def focal_term(logits, positive, gamma):
    """-(1 - p_t)^gamma log p_t with p_t the probability of the given side."""
    log_p = F.logsigmoid(logits if positive else -logits)
    return -((1 - log_p.exp()) ** gamma) * log_p


class LuabLoss(torch.nn.Module):
    """The training objective of one method; returns (total, {"cls": ..., "point": ...}) as tensors."""

    def __init__(self, method, multi_label, lambda_point, point_loss="smooth_l1", huber_beta=1.0,
                 label_smoothing=0.0, patch_focal_gamma=2.0):
        super().__init__()
        self.method, self.multi_label, self.lambda_point = method, multi_label, lambda_point
        self.point_loss, self.huber_beta = point_loss, huber_beta
        self.label_smoothing, self.patch_focal_gamma = label_smoothing, patch_focal_gamma
        self.patch_cluster = None  # a patchcluster.PatchCluster adds its pseudo-positive cells to the patch loss
        self.spatial_consistency = None  # method scl: a scl.SpatialConsistency (its heatmaps) gives the term

    def forward(self, output, labels, points, weights, context=None):
        """context: the training batch (its rows and crops), which the scl term needs; evaluation has none."""
        cls = classification_loss(output["logits"], labels, self.multi_label, self.label_smoothing)
        if self.method in ("luab", "attentive"):
            point = masked_point_loss(output["points"], points, weights, self.point_loss, self.huber_beta)
        elif self.method == "patch":
            point = patch_point_loss(
                output["spatial_logits"], points, weights, labels, self.multi_label, self.patch_focal_gamma
            )
            if self.patch_cluster is not None:
                point = point + self.patch_cluster.loss(output, labels, weights, self.multi_label)
        elif self.method == "scl" and context is not None and self.spatial_consistency is not None:
            cls, point = self.spatial_consistency.loss(output["logits"], output["spatial_logits"], labels, context)
        else:
            point = cls.new_zeros(())
        return cls + self.lambda_point * point, {"cls": cls.detach(), "point": point.detach()}
