import io
import json

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from PIL import Image as PilImage

from annotator.models import Assignment, TaskKind
from tests import factories

pytestmark = pytest.mark.django_db


def jpeg_bytes(colour, seed):
    pixels = np.random.default_rng(seed).integers(0, 60, (32, 40, 3)).astype(np.uint8)
    pixels[8:20, 10:22] = colour
    buffer = io.BytesIO()
    PilImage.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def dataset_with_clicks():
    dataset = factories.DatasetFactory(kind=TaskKind.IMAGENET, name="shapes")
    categories = [factories.CategoryFactory(dataset=dataset, index=i) for i in range(2)]
    batch = factories.BatchFactory(dataset=dataset, name="round-1")
    for n in range(8):
        category = categories[n % 2]
        image = factories.ImageFactory(
            dataset=dataset, label=category, split="train" if n < 6 else "val", width=40, height=32,
            file=ContentFile(jpeg_bytes((200, 40, 40) if n % 2 else (40, 40, 200), n), name=f"img{n}.jpg"),
        )
        if image.split == "val":
            factories.GroundTruthObjectFactory(image=image, category=category, bbox=[10, 8, 12, 12])
        else:
            factories.ImageNetRecordFactory(
                assignment=factories.AssignmentFactory(hit__batch=batch, state=Assignment.State.APPROVED),
                image=image, selected_record=[{"x": 0.4, "y": 0.44, "time": 1}],
            )
    return dataset


def test_train_command_builds_the_manifest_trains_and_reports(dataset_with_clicks, tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    out = io.StringIO()
    call_command(
        "train", dataset="shapes", batches=["round-1"], model="test_resnet", method="luab", epochs=1,
        img_size=32, batch_size=4, device="cpu", out=str(tmp_path / "run"), option=["hflip=0"], stdout=out,
        verbosity=0,
    )
    text = out.getvalue()
    assert "succeeded" in text and "val_top1" in text and "val_maxboxacc_v2" in text
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["hflip"] == 0 and config["manifest_path"].startswith(str(tmp_path / "var" / "manifests"))


def test_train_command_names_what_is_wrong(dataset_with_clicks, tmp_path):
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("train", dataset="nope", out=str(tmp_path))
    with pytest.raises(CommandError, match="--batch: round-9 not in dataset shapes"):
        call_command("train", dataset="shapes", batches=["round-9"], out=str(tmp_path))
    with pytest.raises(CommandError, match="cam: 'attention' needs method attentive, not luab"):
        call_command("train", dataset="shapes", method="luab", cam="attention", out=str(tmp_path))
    with pytest.raises(CommandError, match=r"unknown training option\(s\): hlfip"):
        call_command("train", dataset="shapes", option=["hlfip=0"], out=str(tmp_path))


def test_run_training_job_starts_from_a_named_recipe_and_config_overrides_it(dataset_with_clicks):
    """make demo trains with --recipe cpu-demo: the job records the recipe's options, --config wins where given."""
    from training.ml.recipes import RECIPES
    from training.models import ModelVersion, TrainingJob

    out = io.StringIO()
    call_command("run_training_job", dataset="shapes", recipe="cpu-demo", config='{"epochs": 1, "img_size": 32}',
                 verbosity=0, stdout=out)
    job = TrainingJob.objects.get()
    assert job.config == {**RECIPES["cpu-demo"], "epochs": 1, "img_size": 32}
    version = ModelVersion.objects.get(job=job)
    assert version.config["method"] == "attentive" and version.config["lambda_point"] == 10.0  # resolved, not null
    assert "shifted_centre_point_accuracy" not in version.metrics  # this tiny set has no shifted split
    assert 0 <= version.metrics["val_centre_point_accuracy"] <= 1

    with pytest.raises(CommandError, match="--recipe: invalid choice: 'gpu-giant'"):
        call_command("run_training_job", "--dataset", "shapes", "--recipe", "gpu-giant")
