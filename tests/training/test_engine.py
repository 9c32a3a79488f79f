import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training.ml import manifest as manifest_module
from training.ml.engine import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, TrainConfig, run

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


def test_resume_continues_from_the_saved_epoch(tiny_manifest_path, tmp_path):
    config = tiny_config(tiny_manifest_path, tmp_path / "run", epochs=1, method="attentive")
    run(config)
    progress = []
    result = run(replace(config, epochs=2), on_progress=progress.append)

    assert {p["epoch"] for p in progress} == {2}  # epoch 1 was not trained again
    assert [record["epoch"] for record in result["history"]] == [1, 2]
    assert len((tmp_path / "run" / METRICS_NAME).read_text().splitlines()) == 2

    other_data = manifest_module.write(synthetic_manifest(tmp_path / "other", seed=1), tmp_path / "other")
    with pytest.raises(ValueError, match="was trained on manifest"):
        run(replace(config, epochs=3, manifest_path=str(other_data)))


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
