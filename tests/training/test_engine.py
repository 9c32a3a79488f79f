import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from msgspec.structs import replace

from training.ml import manifest as manifest_module
from training.ml.engine import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, TrainConfig, run
from training.ml.models import resolve_model_kwargs

from .conftest import synthetic_manifest


def tiny_config(manifest_path, out_dir, **overrides):
    values = dict(
        manifest_path=str(manifest_path), out_dir=str(out_dir), model="test_resnet", method="luab", epochs=3,
        img_size=32, batch_size=8, lr=3e-3, log_every=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_a_tiny_cpu_run_lowers_the_loss_and_writes_checkpoint_config_and_metrics(tiny_manifest_path, tmp_path):
    progress = []
    result = run(tiny_config(tiny_manifest_path, tmp_path / "run"), on_progress=progress.append)

    assert result["status"] == "succeeded"
    losses = [record["train_loss"] for record in result["history"]]
    assert losses[-1] < losses[0]
    assert result["metrics"]["epoch"] == 3
    assert {"val_top1", "val_point_accuracy", "shifted_top1", "shifted_point_accuracy"} <= set(result["metrics"])
    lines = (tmp_path / "run" / METRICS_NAME).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    checkpoint = torch.load(result["checkpoint"], weights_only=False)
    assert checkpoint["epoch"] == 3 and checkpoint["class_names"] == ["red", "green", "blue"]
    assert json.loads((tmp_path / "run" / CONFIG_NAME).read_text())["method"] == "luab"
    assert set(progress[-1]) == {"epoch", "epochs", "step", "steps", "loss", "images_per_s", "eta_s"}
    assert progress[-1]["epoch"] == 3 and progress[-1]["step"] == progress[-1]["steps"] == 3
    assert progress[-1]["eta_s"] == 0


def test_a_run_folder_resumes_only_the_same_data_under_the_same_config(tiny_manifest_path, tmp_path):
    config = tiny_config(tiny_manifest_path, tmp_path / "run", epochs=1, method="attentive")
    first = run(config)
    progress = []
    again = run(replace(config, workers=0, log_every=5), on_progress=progress.append)  # placement options may change

    assert progress == [] and again["history"] == first["history"]  # nothing trained again
    for changed, message in (
        (dict(lr=0.01), r"another config \(lr 0.003 -> 0.01\)"),
        (dict(epochs=2), r"epochs 1 -> 2"),
        (dict(lambda_point=1.0), r"lambda_point 10.0 -> 1.0"),  # the default it resolved to is what is compared
        (dict(color_jitter=0.4), r"color_jitter 0.0 -> 0.4"),
    ):
        with pytest.raises(ValueError, match=message):
            run(replace(config, **changed))
    assert len((tmp_path / "run" / METRICS_NAME).read_text().splitlines()) == 1  # the refused runs wrote nothing

    other_data = manifest_module.write(synthetic_manifest(tmp_path / "other", seed=1), tmp_path / "other")
    with pytest.raises(ValueError, match="was trained on manifest"):
        run(replace(config, manifest_path=str(other_data)))


def test_config_json_holds_the_resolved_lambda_and_output_stride(tiny_manifest_path, tmp_path):
    """lambda_point None and no output_stride: config.json says what the run used, and a run started from that
    file is the same run (it resumes the folder instead of being refused)."""
    result = run(tiny_config(tiny_manifest_path, tmp_path / "run", epochs=1, lambda_point=None))
    saved = json.loads((tmp_path / "run" / CONFIG_NAME).read_text())

    assert saved["lambda_point"] == 10.0 and saved["model_kwargs"] == {"output_stride": 8}  # 32 px: 4 x 4 cells
    assert result["config"]["lambda_point"] == 10.0
    assert run(TrainConfig.from_dict(saved))["history"] == result["history"]


@pytest.mark.parametrize("name, img_size, expected", [
    ("test_resnet", 64, {"output_stride": 8}),  # stride 32 gives 2 x 2 cells, 16 gives 4 x 4, 8 gives 8 x 8
    ("test_resnet", 256, {}),  # 8 x 8 at stride 32 already
    ("test_vit", 160, {}),  # no output_stride to lower: a ViT's grid is set by its patches
])
def test_the_output_stride_is_chosen_from_the_model_feature_map(name, img_size, expected):
    assert resolve_model_kwargs(name, img_size, min_feature_cells=7) == expected


def test_should_stop_cancels_and_the_resumed_run_ends_like_an_uninterrupted_one(tiny_manifest_path, tmp_path):
    calls = []

    def stop_at_fifth_step():
        calls.append(1)
        return len(calls) == 5

    config = tiny_config(tiny_manifest_path, tmp_path / "cancelled", method="patch", epochs=2)
    cancelled = run(config, should_stop=stop_at_fifth_step)
    assert cancelled["status"] == "cancelled" and (cancelled["epoch"], cancelled["step"]) == (2, 1)
    assert len(cancelled["history"]) == 1 and Path(cancelled["checkpoint"]).name == CHECKPOINT_NAME

    resumed = run(config)
    straight = run(replace(config, out_dir=str(tmp_path / "straight")))
    assert resumed["status"] == "succeeded"
    for name in ("val_loss", "val_top1", "val_point_accuracy", "shifted_loss"):
        assert resumed["history"][0][name] == straight["history"][0][name]
        assert resumed["metrics"][name] == pytest.approx(straight["metrics"][name], rel=1e-4)


@pytest.mark.slow
def test_two_process_ddp_on_the_cpu_agrees_with_one_process(tiny_manifest_path, tmp_path):
    """gloo, launched by torchrun: 2 processes x 4 images per step see the same batches as 1 process x 8."""
    # A LayerNorm model (no batch statistics) and full-image crops (no point leaves a crop), so the two are the
    # same computation up to floating-point summation order.
    common = dict(model="test_vit", model_kwargs={"img_size": 32, "patch_size": 8}, crop_scale=(1.0, 1.0), epochs=2)
    single = run(tiny_config(tiny_manifest_path, tmp_path / "single", **common))

    distributed = tiny_config(tiny_manifest_path, tmp_path / "ddp", batch_size=4, **common)
    config_path = tmp_path / "ddp.json"
    config_path.write_text(distributed.to_json())
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "training.ml.engine", str(config_path)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    history = [json.loads(line) for line in (tmp_path / "ddp" / METRICS_NAME).read_text().splitlines()]

    assert [record["epoch"] for record in history] == [1, 2]
    for ddp_record, single_record in zip(history, single["history"]):
        for name in ("train_loss", "train_point"):
            assert ddp_record[name] == pytest.approx(single_record[name], rel=1e-4), name
        for name in ("val_loss", "shifted_loss"):  # Adam amplifies summation-order differences a little
            assert ddp_record[name] == pytest.approx(single_record[name], rel=1e-2), name
        for name in ("val_top1", "val_point_accuracy", "shifted_top1"):
            assert ddp_record[name] == single_record[name], name


def test_coco_style_multi_label_runs_for_every_method(tmp_path):
    """BCE, one point slot per class, mAP: the multi-label path of each method trains and is scored."""
    path = manifest_module.write(
        synthetic_manifest(tmp_path / "images", per_class=(4, 2, 2), kind="coco"), tmp_path / "manifests"
    )
    for method in ("baseline", "luab", "attentive", "patch"):
        result = run(tiny_config(path, tmp_path / method, method=method, epochs=1, lambda_point=None))
        metrics = result["metrics"]
        assert 0 <= metrics["val_mAP"] <= 1 and 0 <= metrics["shifted_point_accuracy"] <= 1, method
        assert "val_top1" not in metrics
        checkpoint = torch.load(result["checkpoint"], weights_only=False)
        assert checkpoint["kind"] == "coco" and checkpoint["lambda_point"] == 5.0  # COCO, small backbone
