import pytest
import torch

from training.ml.losses import LuabLoss, default_lambda, masked_point_loss, patch_point_loss


@pytest.mark.parametrize("kind", ["smooth_l1", "mse"])
def test_masked_point_loss_ignores_targets_of_weight_zero(kind):
    target = torch.tensor([[[0.2, 0.2]], [[0.8, 0.8]]])
    predicted = torch.tensor([[[0.3, 0.2]], [[-50.0, 90.0]]], requires_grad=True)
    weights = torch.tensor([[1.0], [0.0]])

    loss = masked_point_loss(predicted, target, weights, kind)
    only_first = masked_point_loss(predicted[:1], target[:1], weights[:1], kind)
    loss.backward()

    assert loss.item() == pytest.approx(only_first.item())
    assert loss.item() == pytest.approx(0.5 * 0.01 / 2 if kind == "smooth_l1" else 0.01 / 2)
    assert predicted.grad[1].abs().sum() == 0


def test_point_loss_of_a_batch_without_points_is_zero():
    assert masked_point_loss(torch.rand(3, 2, 2), torch.rand(3, 2, 2), torch.zeros(3, 2)).item() == 0


def test_huber_beta_switches_to_linear_beyond_beta():
    loss = masked_point_loss(torch.tensor([[[3.0, 0.0]]]), torch.zeros(1, 1, 2), torch.ones(1, 1), beta=1.0)
    assert loss.item() == pytest.approx((3 - 0.5) / 2)


def test_default_lambda_follows_seed_000():
    assert default_lambda("imagenet", 11_700_000) == 10
    assert default_lambda("coco", 11_700_000) == 5
    assert default_lambda("coco", 25_600_000) == 50


def test_patch_loss_supervises_the_clicked_cell_and_absent_classes_only():
    spatial_logits = torch.zeros(1, 3, 4, 4, requires_grad=True)
    labels = torch.tensor([1])
    points = torch.tensor([[[0.6, 0.1]]])  # cell (row 0, column 2)
    loss = patch_point_loss(spatial_logits, points, torch.ones(1, 1), labels, multi_label=False)
    loss.backward()
    grad = spatial_logits.grad[0]
    assert grad[1, 0, 2] < 0  # the clicked cell of the label's class is pushed up
    assert grad[1].abs().sum() == grad[1, 0, 2].abs()  # the class's other cells are ignored
    assert (grad[0] > 0).all() and (grad[2] > 0).all()  # every cell of absent classes is pushed down


def test_baseline_objective_has_no_point_term():
    criterion = LuabLoss("baseline", multi_label=False, lambda_point=10)
    output = {"logits": torch.tensor([[2.0, 0.0]]), "points": None}
    total, parts = criterion(output, torch.tensor([0]), torch.rand(1, 1, 2), torch.ones(1, 1))
    assert total.item() == pytest.approx(parts["cls"].item()) and parts["point"].item() == 0
