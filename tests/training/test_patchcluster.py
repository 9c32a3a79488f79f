"""PatchCluster (seed 001): prototypes, cosine-distance pseudo-labels, and the IoA-P / mAP-loc metric."""
import math

import numpy as np
import pytest
import torch
from msgspec.structs import replace

from training.ml import manifest as manifest_module
from training.ml import patchcluster, wsol
from training.ml.engine import TrainConfig, load_checkpoint, run

from .conftest import synthetic_manifest


def test_two_prototypes_and_known_features_give_the_documented_pseudo_labels():
    prototypes = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [float("nan"), float("nan")]])
    # three cells: a = (1, 0), b = (1, 1), c = (0, -1); grid (B=1, D=2, H=1, W=3)
    grid = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, -1.0]]).view(1, 2, 1, 3)

    distance = patchcluster.cosine_distance(grid, prototypes)
    # 1 - cos: a-p0 0, b-p0 1 - 1/sqrt2, c-p0 1; a-p1 2, b-p1 1 + 1/sqrt2, c-p1 1; p2 has no clicks: inf
    expected = [[0.0, 1 - 1 / math.sqrt(2), 1.0], [2.0, 1 + 1 / math.sqrt(2), 1.0]]
    assert distance[0, :2, 0].tolist() == [pytest.approx(row, abs=1e-6) for row in expected]
    assert torch.isinf(distance[0, 2]).all()

    positive, negative = patchcluster.pseudo_labels(grid, prototypes, d_positive=0.3, d_negative=0.9)
    assert positive[0, :, 0].tolist() == [[True, True, False], [False, False, False], [False, False, False]]
    # class 1: every cell farther than 0.9 -> a negative; class 0 has close cells; class 2 (no prototype): all inf
    assert negative[0].tolist() == [False, True, True]


def test_ioa_p_of_a_known_map_and_mask():
    cam = np.array([[1.0, 0.75], [0.65, 0.0]], np.float32)
    mask = np.array([[True, False], [False, False]])
    # t = 0.6: 3 pixels predicted, 1 on the mask -> 1/3; t = 0.7: 2 -> 1/2; t = 0.8 and 0.9: only the peak -> 1
    assert wsol.intersection_over_predicted_area(cam, mask) == pytest.approx([1 / 3, 1 / 2, 1, 1])


def test_map_loc_counts_an_image_only_when_it_has_the_class_and_is_localised():
    logits = np.array([[0.9], [0.8], [0.1]])
    instances = [(10, 0), (12, 0)]  # rows 10 and 12 have class 0; row 11 does not
    ioa = np.array([[1.0, 1.0, 1.0, 1.0], [0.4, 0.6, 0.6, 0.6]])  # row 12 is mislocalised at t = 0.6
    # t = 0.6: ranking 10 (hit, precision 1), 11, 12 (miss) -> AP = 1 / 2 images with the class = 0.5;
    # t >= 0.7: hits at ranks 1 and 3 -> (1 + 2/3) / 2 = 5/6; map_loc = (0.5 + 3 x 5/6) / 4 = 0.75
    assert wsol.localization_average_precision(logits, [10, 11, 12], instances, ioa) == pytest.approx(0.75)


def test_options_are_validated():
    with pytest.raises(ValueError, match="patch_cluster: needs method patch, not luab"):
        TrainConfig(manifest_path="", out_dir="", method="luab", patch_cluster=True)
    with pytest.raises(ValueError, match="need 0 <= d\\+ < d- <= 1, got 0.5 and 0.4"):
        TrainConfig(manifest_path="", out_dir="", method="patch", cluster_d_positive=0.5, cluster_d_negative=0.4)


@pytest.fixture
def half_clicked_manifest(tmp_path):
    manifest = synthetic_manifest(tmp_path / "images")
    manifest.point_weight[np.flatnonzero(manifest.split == "train")[1::2]] = 0  # half the train images unclicked
    return manifest_module.write(manifest, tmp_path / "manifests")


def test_patch_cluster_pseudo_labels_unclicked_images_and_resumes_with_its_prototypes(half_clicked_manifest,
                                                                                       tmp_path):
    config = TrainConfig(
        manifest_path=str(half_clicked_manifest), out_dir=str(tmp_path / "cancelled"), model="test_resnet",
        method="patch", epochs=2, img_size=64, batch_size=4, patch_cluster=True, cluster_d_positive=0.5,
        cluster_d_negative=0.9,
    )
    calls = []
    cancelled = run(config, should_stop=lambda: calls.append(1) or len(calls) == 8)  # stops in epoch 2
    assert cancelled["status"] == "cancelled" and cancelled["epoch"] == 2
    prototypes = load_checkpoint(cancelled["checkpoint"])["prototypes"]
    assert prototypes.shape[0] == 3 and not torch.isnan(prototypes).any()  # every class has clicked cells

    resumed = run(config)
    straight = run(replace(config, out_dir=str(tmp_path / "straight")))
    first, second = straight["history"]
    assert first["train_pseudo_positive_cells"] == 0  # no prototypes during the first epoch
    assert second["train_pseudo_positive_cells"] > 0
    assert resumed["metrics"]["val_loss"] == pytest.approx(straight["metrics"]["val_loss"], rel=1e-4)
    assert 0 <= straight["metrics"]["val_map_loc"] <= 1 and 0 <= straight["metrics"]["val_ioap"] <= 1
