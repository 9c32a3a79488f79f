"""Method scl (seed 003): the heatmap store (uint8, 2x the feature map, top-k classes), the single-label manifest
from icons, and a resumable run."""
import math

import numpy as np
import pytest
import torch
from msgspec.structs import replace
from PIL import Image

from tests.training.test_manifest_builder import coco_dataset  # noqa: F401  (fixture)
from training.manifest_builder import manifest_for
from training.ml import manifest as manifest_module
from training.ml.engine import TrainConfig, load_checkpoint, run
from training.ml.scl import FREE, HeatmapStore, SpatialConsistency, SquareResize, SquareResizedCrop
from training.ml.transforms import Crop

from .conftest import synthetic_manifest

WHOLE = Crop(0, 0, 40, 40, 40, 40, False)


def constant_predictions(values, size=2):
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1).expand(1, len(values), size, size)


def test_top_k_is_chosen_once_from_the_ema_scores_after_the_warm_up_and_heatmaps_are_uint8_moving_averages():
    store = HeatmapStore(rows=[7, 9], num_classes=3, size=4, top_k=2)
    store.update([7], [WHOLE], constant_predictions([0.8, 0.2, 0.5]), annotated=[[1]], momentum=0.5)
    # the warm-up epoch: scores are averaged, nothing is kept yet, no spatial target
    assert store.classes[0].tolist() == [FREE, FREE] and not store.seen.any()
    assert store.scores[0].float().tolist() == pytest.approx([0.8, 0.2, 0.5], abs=1e-3)
    _, mask = store.targets([7], [WHOLE], grid_size=2, device="cpu")
    assert not mask.any()

    store.update([7], [WHOLE], constant_predictions([0.4, 0.6, 0.1]), annotated=[[1]], momentum=0.5)
    # EMA scores 0.5 x 0.8 + 0.5 x 0.4 = 0.6, 0.4, 0.3: kept the annotated class 1, then class 0 (0.6 > 0.3)
    assert store.scores[0].float().tolist() == pytest.approx([0.6, 0.4, 0.3], abs=1e-3)
    assert store.classes[0].tolist() == [1, 0] and store.seen[0].tolist() == [True, True]
    assert store.maps.dtype == torch.uint8
    assert store.maps[0, 0].unique().tolist() == [153] and store.maps[0, 1].unique().tolist() == [102]  # 0.6, 0.4

    store.update([7], [WHOLE], constant_predictions([0.1, 0.6, 0.9]), annotated=[[1]], momentum=0.5)
    # EMA scores now 0.35, 0.5, 0.6: class 2 scores highest, but the choice is made once and stays
    assert store.classes[0].tolist() == [1, 0]
    assert store.maps[0, 1].unique().tolist() == [64]  # 0.5 x 0.4 + 0.5 x 0.1 = 0.25 -> 63.75 -> 64

    targets, mask = store.targets([7, 9], [WHOLE, WHOLE], grid_size=2, device="cpu")
    assert targets[0, :, 0, 0].tolist() == pytest.approx([0.25, 0.6, 0.0], abs=1 / 255)  # class 2 counts as 0
    assert mask.tolist() == [[True, True, True], [False, False, False]]  # row 9: still in its warm-up


def test_the_expected_negative_loss_leaves_the_kept_unannotated_classes_out():
    store = HeatmapStore(rows=[7, 9], num_classes=3, size=4, top_k=2)
    store.classes[0] = torch.tensor([1, 0], dtype=torch.int16)  # row 7 chose classes 1 (annotated) and 0
    labels = torch.tensor([[0, 1, 0], [1, 0, 0]])
    # row 7: class 1 positive, class 0 kept (ignored), class 2 an expected negative; row 9 (warm-up): all count
    assert store.expected_negatives([7, 9], labels).tolist() == [[0, 1, 1], [1, 1, 1]]

    term = SpatialConsistency([7, 9], 3, top_k=2)
    term.store = store
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    context = {"row": torch.tensor([7, 9]), "crop": torch.tensor(np.stack([WHOLE.as_array()] * 2))}
    classification, _ = term.loss(logits, torch.zeros(2, 3, 2, 2), labels, context)
    # -log sigmoid(0) for row 7's positive, -log(1 - sigmoid(-1)) for its negative, log 2 for each of row 9's three
    expected = (math.log(2) + math.log(1 + math.exp(-1)) + 3 * math.log(2)) / 5
    assert classification.item() == pytest.approx(expected, rel=1e-6)


def test_the_papers_coco_augmentation_crops_a_square_of_the_square_resized_image():
    transform = SquareResizedCrop(48, scale=(0.25, 1.0))
    rng = np.random.default_rng(0)
    for _ in range(50):
        crop = transform.sample_crop(200, 100, rng)
        # a square of the 672 x 672 resize is a crop of the image's own 2:1 shape, of 0.25-1 of its area
        assert crop.width / crop.height == pytest.approx(2.0, abs=0.05)
        assert 0.24 <= crop.width * crop.height / (200 * 100) <= 1.0
    pixels, _, _, crop = SquareResize(48)(Image.new("RGB", (200, 100)), np.zeros((1, 2)), np.zeros(1))
    assert tuple(pixels.shape) == (3, 48, 48) and (crop.left, crop.top, crop.width, crop.height) == (0, 0, 200, 100)


def test_memory_is_bounded_by_top_k():
    store = HeatmapStore(rows=range(1000), num_classes=80, size=28, top_k=10)
    # maps 1000 x 10 x 28 x 28 bytes + kept classes (int16) + seen flags + EMA scores (float16) + update counts
    assert store.nbytes == 1000 * 10 * 784 + 1000 * 10 * 2 + 1000 * 10 + 1000 * 80 * 2 + 1000 * 2
    assert store.dense_nbytes == 1000 * 80 * 784
    # the paper's ImageNet arithmetic: 1.28M images x 1000 classes x 14 x 14 uint8 = 251 GB; top-10: 2.5 GB
    assert 1_281_167 * 1000 * 14 * 14 / 1e9 == pytest.approx(251.1, abs=0.1)
    assert 1_281_167 * 10 * 14 * 14 / 1e9 == pytest.approx(2.51, abs=0.01)


@pytest.mark.django_db
def test_the_single_label_manifest_takes_the_first_icon_still_on_the_image(coco_dataset):  # noqa: F811
    dataset, image, _ = coco_dataset
    manifest = manifest_for(dataset, single_label=True)
    row = [i for i, split in enumerate(manifest.split) if split == "train"][0]
    assert manifest.label[row].tolist() == [1, 0, 0]  # icons 1 (added first, kept), 2 (removed), 3: one label
    assert manifest.point_weight[row].tolist() == [1, 0, 0]
    assert manifest.source["train_labels"] == "first icon (one label per image)"
    val = [i for i, split in enumerate(manifest.split) if split == "val"][0]
    assert manifest.label[val].tolist() == [0, 0, 1]  # evaluation keeps the ground truth


def test_an_scl_run_records_its_heatmap_memory_and_resumes_with_its_heatmaps(tmp_path):
    path = manifest_module.write(synthetic_manifest(tmp_path / "images", kind="coco"), tmp_path / "manifests")
    config = TrainConfig(
        manifest_path=str(path), out_dir=str(tmp_path / "cancelled"), model="test_resnet", method="scl", epochs=2,
        img_size=64, batch_size=4, scl_top_k=2, min_feature_cells=2,  # the 2x2 map of test_resnet at 64 px
    )
    calls = []
    cancelled = run(config, should_stop=lambda: calls.append(1) or len(calls) == 9)
    assert cancelled["status"] == "cancelled" and cancelled["epoch"] == 2
    heatmaps = load_checkpoint(cancelled["checkpoint"])["heatmaps"]
    assert heatmaps["maps"].dtype == torch.uint8 and heatmaps["maps"].shape[1:] == (2, 4, 4)  # top-2, 2 x 2x2 grid
    assert heatmaps["seen"].any()

    resumed = run(config)
    straight = run(replace(config, out_dir=str(tmp_path / "straight")))
    assert resumed["metrics"]["val_loss"] == pytest.approx(straight["metrics"]["val_loss"], rel=1e-4)
    final = straight["metrics"]
    assert final["train_heatmap_bytes"] < final["train_heatmap_dense_bytes"]
    assert 0 <= final["val_mAP"] <= 1 and "val_maxboxacc_v2" in final


def test_scl_needs_a_coco_style_manifest_and_the_pil_loader(tiny_manifest_path, tmp_path):
    with pytest.raises(ValueError, match="decode: method scl reads each image's crop from the loader"):
        TrainConfig(manifest_path="", out_dir="", method="scl", decode="device")
    with pytest.raises(ValueError, match="method: scl trains COCO-style"):
        run(TrainConfig(manifest_path=str(tiny_manifest_path), out_dir=str(tmp_path), model="test_resnet",
                        method="scl", epochs=1, img_size=32))


def tiny_coco_dataset():
    """A COCO-style dataset: each train image a coloured square with one approved icon on it; val with boxes."""
    from django.core.files.base import ContentFile

    from annotator.models import Assignment, TaskKind
    from tests import factories
    from tests.training.job_data import COLOURS, square_jpeg

    rng = np.random.default_rng(0)
    dataset = factories.DatasetFactory(kind=TaskKind.COCO)
    batch = factories.BatchFactory(dataset=dataset, task_kind=TaskKind.COCO)
    for index, colour in enumerate(COLOURS):
        category = factories.CategoryFactory(dataset=dataset, index=index, key=str(index + 1))
        for split, count in (("train", 3), ("val", 1)):
            for i in range(count):
                data, (x, y) = square_jpeg(colour, rng)
                image = factories.ImageFactory(dataset=dataset, split=split, width=32, height=32,
                                               file=ContentFile(data, name=f"{split}-{index}-{i}.jpg"))
                factories.GroundTruthObjectFactory(image=image, category=category,
                                                   bbox=[x * 32 - 6, y * 32 - 6, 12, 12])
                if split == "train":
                    actions = [{"actionType": "add", "iconType": category.key, "pointFrom": None,
                                "pointTo": {"x": x, "y": y}, "timeAt": 1000}]
                    factories.CocoRecordFactory(
                        assignment=factories.AssignmentFactory(hit__batch=batch, state=Assignment.State.APPROVED),
                        image=image, action_histories=actions, final_positions={category.key: {"x": x, "y": y}},
                    )
    return dataset


@pytest.mark.django_db
def test_manage_py_train_runs_scl_on_a_coco_style_dataset(tmp_path, settings):
    import io
    import json

    from django.core.management import call_command

    settings.VAR_DIR = tmp_path / "var"
    dataset = tiny_coco_dataset()
    out = io.StringIO()
    call_command("train", dataset=dataset.name, method="scl", model="test_resnet", epochs=1, img_size=64,
                 batch_size=3, device="cpu", out=str(tmp_path / "run"), option=["scl_top_k=2"], stdout=out,
                 verbosity=0)
    text = out.getvalue()
    assert "succeeded" in text and "train_heatmap_bytes" in text and "val_mAP" in text
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    manifest = manifest_module.read(config["manifest_path"])
    assert config["method"] == "scl" and manifest.source["train_labels"] == "first icon (one label per image)"
    assert manifest.label[manifest.split == "train"].sum(axis=1).tolist() == [1] * 9


@pytest.mark.django_db
def test_an_api_job_trains_scl_from_the_icons(researcher_client_for_scl, django_capture_on_commit_callbacks,
                                              settings, tmp_path):
    from training.models import JobStatus, TrainingJob

    settings.TRAINING_WORK_DIR = tmp_path / "work"
    settings.TRAINING_PROGRESS_INTERVAL = 3600  # no heartbeat thread writes during the inline run (PostgreSQL)
    dataset = tiny_coco_dataset()
    config = {"model": "test_resnet", "method": "scl", "epochs": 1, "img_size": 64, "batch_size": 3,
              "device": "cpu", "scl_top_k": 2}
    with django_capture_on_commit_callbacks(execute=True):
        response = researcher_client_for_scl.post("/api/training/jobs/create/",
                                                  {"dataset": dataset.name, "config": config}, format="json")
    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.model_version.metrics["train_heatmap_bytes"] < job.model_version.metrics["train_heatmap_dense_bytes"]


@pytest.fixture
def researcher_client_for_scl(django_user_model):
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user("scl-researcher")
    user.groups.add(Group.objects.get(name="researchers"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
