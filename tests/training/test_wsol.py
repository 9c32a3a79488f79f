"""WSOL localisation metrics (training/ml/wsol.py, seed 002): hand-computed MaxBoxAccV2 and PxAP, the engine
scoring every trained model, the model page and the two-run comparison showing them."""
import numpy as np
import pytest
import torch

from tests import factories
from tests.training.job_data import registered_version
from training.ml import wsol
from training.ml.engine import TrainConfig, run


def two_blobs():
    """10x10 map: a 4x4 block of 1.0 (box [0.2, 0.2, 0.6, 0.6]) and a separate 2x2 block of 0.5 (box
    [0.7, 0.7, 0.9, 0.9]); 0 elsewhere."""
    cam = np.zeros((10, 10), np.float32)
    cam[2:6, 2:6] = 1.0
    cam[7:9, 7:9] = 0.5
    return cam


def test_maxboxacc_v2_of_a_known_map_and_boxes():
    scores = wsol.LocalizationScores()
    scores.add(two_blobs(), [[0.2, 0.2, 0.6, 0.6]])  # the strong blob: IoU 1 for every tau > 0
    scores.add(two_blobs(), [[0.7, 0.7, 0.9, 0.9]])  # the weak blob: its own component only while tau <= 0.5
    square = np.zeros((10, 10), np.float32)
    square[0:5, 0:5] = 1.0
    scores.add(square, [[0.0, 0.0, 0.5, 0.8]])  # IoU 0.25 / 0.40 = 0.625: a hit at 0.3 and 0.5, a miss at 0.7

    metrics = scores.metrics()

    # tau = 0: one component, the whole frame (IoU 0.16, 0.04, 0.4 -> only the third counts at 0.3);
    # 0 < tau <= 0.5: every blob its own box -> 3/3 hits at 0.3 and 0.5, 2/3 at 0.7;
    # tau > 0.5: the weak blob is gone -> 2/3 at 0.3 and 0.5, 1/3 at 0.7.
    assert metrics["maxboxacc_iou30"] == 1.0
    assert metrics["maxboxacc_iou50"] == 1.0
    assert metrics["maxboxacc_iou70"] == pytest.approx(2 / 3)
    assert metrics["maxboxacc_v2"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    curves = metrics["localization_curves"]
    assert curves["thresholds"][:3] == [0.0, 0.01, 0.02] and len(curves["thresholds"]) == 100
    assert curves["box_accuracy"]["0.3"][0] == pytest.approx(1 / 3, abs=1e-4)
    assert curves["box_accuracy"]["0.5"][1:51] == [1.0] * 50
    assert curves["box_accuracy"]["0.5"][51:] == [pytest.approx(2 / 3, abs=1e-4)] * 49
    assert curves["box_accuracy"]["0.7"][51] == pytest.approx(1 / 3, abs=1e-4)
    assert "pxap" not in metrics  # no masks given


def test_every_connected_component_gives_a_box_including_diagonal_neighbours():
    cam = np.zeros((6, 6), np.float32)
    cam[0, 0] = cam[1, 1] = 1.0  # touching at a corner: one 8-connected component
    cam[4, 4] = 1.0
    level, boxes = wsol.component_boxes(torch.as_tensor(cam)[None] > 0.5)
    assert level.tolist() == [0, 0]
    assert sorted(map(tuple, (boxes * 6).round().tolist())) == [(0, 0, 2, 2), (4, 4, 5, 5)]


def test_pxap_of_a_known_mask():
    cam = np.array([[1.0, 0.65], [0.35, 0.0]], np.float32)
    mask = np.array([[False, True], [True, False]])
    scores = wsol.LocalizationScores()
    scores.add(cam, [[0.0, 0.0, 1.0, 1.0]], mask)

    # Thresholds from 1 down: tau = 1 -> TP 0, FP 1 (P 0, R 0); tau <= 0.65 -> TP 1, FP 1 (P 1/2, R 1/2);
    # tau <= 0.35 -> TP 2, FP 1 (P 2/3, R 1); tau = 0 adds a false positive, recall unchanged.
    # PxAP = 1/2 x 1/2 + 2/3 x 1/2 = 7/12.
    metrics = scores.metrics()
    assert metrics["pxap"] == pytest.approx(7 / 12)
    curves = metrics["localization_curves"]
    assert curves["pixel_thresholds"][-1] == 1.0
    assert curves["pixel_precision"][0] == 0.5 and curves["pixel_recall"][0] == 1.0


def test_shards_add_up_to_the_whole():
    whole, first, second = wsol.LocalizationScores(), wsol.LocalizationScores(), wsol.LocalizationScores()
    for scores, box in ((first, [0.2, 0.2, 0.6, 0.6]), (second, [0.7, 0.7, 0.9, 0.9])):
        scores.add(two_blobs(), [box])
        whole.add(two_blobs(), [box])
    assert (first + second).metrics() == whole.metrics()


def test_cam_option_is_validated():
    with pytest.raises(ValueError, match="cam: 'attention' needs method attentive"):
        TrainConfig(manifest_path="", out_dir="", method="luab", cam="attention")
    with pytest.raises(ValueError, match="cam: 'grad' is not one of"):
        TrainConfig(manifest_path="", out_dir="", cam="grad")


@pytest.mark.parametrize("method, cam", [("baseline", "auto"), ("attentive", "attention"), ("patch", "classifier")])
def test_every_trained_model_is_scored_after_its_last_epoch(tiny_manifest_path, tmp_path, method, cam):
    result = run(TrainConfig(
        manifest_path=str(tiny_manifest_path), out_dir=str(tmp_path), model="test_resnet", method=method, epochs=2,
        img_size=64, batch_size=8, cam=cam,
    ))
    first, last = result["history"]
    assert "val_maxboxacc_v2" not in first  # scored once, after the last epoch
    for split in ("val", "shifted"):
        for name in ("maxboxacc_iou30", "maxboxacc_iou50", "maxboxacc_iou70", "maxboxacc_v2"):
            assert 0 <= last[f"{split}_{name}"] <= 1
        curves = last[f"{split}_localization_curves"]
        assert len(curves["box_accuracy"]["0.5"]) == 100
        assert max(curves["box_accuracy"]["0.5"]) == pytest.approx(last[f"{split}_maxboxacc_iou50"], abs=1e-4)


def test_masks_of_the_split_give_pxap(tmp_path):
    from training.ml import manifest as manifest_module

    from .conftest import synthetic_manifest

    manifest = synthetic_manifest(tmp_path / "images")
    for row in np.flatnonzero(manifest.split != "train"):  # each square's polygon is its box
        manifest.polygon_box = np.append(manifest.polygon_box, np.flatnonzero(manifest.box_image == row))
    x0, y0, x1, y1 = manifest.box[manifest.polygon_box].T
    manifest.polygon_xy = np.stack([x0, y0, x1, y0, x1, y1, x0, y1], axis=1).reshape(-1, 2).astype(np.float32)
    manifest.polygon_start = np.arange(len(manifest.polygon_box) + 1) * 4
    path = manifest_module.write(manifest, tmp_path / "manifests")
    result = run(TrainConfig(
        manifest_path=str(path), out_dir=str(tmp_path / "run"), model="test_resnet", method="patch", epochs=1,
        img_size=64, batch_size=8,
    ))
    assert 0 < result["metrics"]["val_pxap"] <= 1
    assert len(result["metrics"]["val_localization_curves"]["pixel_precision"]) == 101


@pytest.mark.django_db
def test_model_page_and_comparison_show_the_localisation_metrics(admin_client):
    scores = wsol.LocalizationScores()
    scores.add(two_blobs(), [[0.2, 0.2, 0.6, 0.6]])
    scores.add(two_blobs(), [[0.7, 0.7, 0.9, 0.9]], two_blobs() == 0.5)  # PxAP: 4 of 20 pixels above 0.5 -> 0.2
    metrics = {"epoch": 1, "val_top1": 0.5, **{f"val_{name}": value for name, value in scores.metrics().items()}}
    dataset = factories.DatasetFactory()
    a = registered_version(dataset, metrics=metrics, epoch_metrics=[metrics])
    b = registered_version(dataset, metrics={"epoch": 1, "val_top1": 0.25}, epoch_metrics=[])

    page = admin_client.get(f"/admin/training/modelversion/{a.pk}/change/").content.decode()
    assert "WSOL localisation" in page and "maxboxacc_iou70" in page and "pxap" in page
    assert "0.2000" in page
    assert 'src="data:image/png;base64,' in page

    response = admin_client.post(
        "/admin/training/modelversion/", {"action": "compare", "_selected_action": [a.pk, b.pk]}
    )
    compare = admin_client.get(response["Location"]).content.decode()
    assert f"{a.name}: val" in compare and "maxboxacc_v2" in compare
    assert "val_localization_curves" not in compare  # curves are plotted, not tabled


def boxes_by_flood_fill(mask):
    """Reference: bounding boxes (in cells) of the 8-connected components of a 2-D bool array."""
    height, width = mask.shape
    seen, boxes = np.zeros_like(mask), set()
    for y in range(height):
        for x in range(width):
            if not mask[y, x] or seen[y, x]:
                continue
            stack, cells = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                cells.append((cy, cx))
                for ny in range(cy - 1, cy + 2):
                    for nx in range(cx - 1, cx + 2):
                        if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            ys, xs = zip(*cells)
            boxes.add((min(xs), min(ys), max(xs) + 1, max(ys) + 1))
    return boxes


def test_component_boxes_agree_with_a_flood_fill_on_random_maps():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 14, 14)) ** 2
    masks = torch.as_tensor(maps > 0.35)
    level, boxes = wsol.component_boxes(masks)
    for index in range(len(maps)):
        found = {tuple(b) for b in (boxes[level == index] * 14).round().long().tolist()}
        assert found == boxes_by_flood_fill(masks[index].numpy())
