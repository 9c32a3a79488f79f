"""Active learning (seed 004) in training: balanced mini-batches and pseudo-labels folded into the next manifest."""
import io
import json

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotator.exports import services as export_services
from annotator.models import ImageNetRecord, ImageScore, Split
from tests import factories
from tests.training.job_data import TINY_CONFIG, registered_version, square_jpeg, tiny_imagenet_dataset
from training.manifest_builder import manifest_for
from training.services import inference_jobs, registry, training_jobs
from training.ml import data as data_module
from training.ml import manifest as manifest_module
from training.ml.engine import TrainConfig, run
from training.models import JobStatus, TrainingJob

from .conftest import synthetic_manifest


def test_balanced_batches_are_half_labelled_and_cover_the_larger_side_once():
    labelled = np.array([True] * 4 + [False] * 8)
    sampler = data_module.BalancedBatchSampler(labelled, batch_size=4, seed=3)
    sampler.set_epoch(0)
    batches = list(sampler)

    assert len(batches) == len(sampler) == 4  # 8 unlabelled, 2 per batch
    for batch in batches:
        assert sum(labelled[batch]) == 2 and len(batch) == 4
    seen = np.concatenate(batches)
    assert sorted(seen[~labelled[seen]]) == list(range(4, 12))  # every unlabelled row once
    assert np.bincount(seen[labelled[seen]]).tolist() == [2, 2, 2, 2]  # the smaller side twice

    sampler.set_epoch(0, skip_batches=3)
    assert list(sampler) == batches[3:]  # a resumed epoch continues with the batches not yet seen
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_balanced_batches_split_across_processes_like_one_big_batch():
    labelled = np.array([True] * 3 + [False] * 9)
    ranks = [data_module.BalancedBatchSampler(labelled, batch_size=2, seed=0, rank=r, world_size=2) for r in (0, 1)]
    per_rank = [list(sampler) for sampler in ranks]
    assert len(per_rank[0]) == len(per_rank[1])
    for first, second in zip(*per_rank):
        assert sum(labelled[first + second]) == 2  # one labelled row per process and step


def test_a_run_with_balanced_batches_trains(tmp_path):
    manifest = synthetic_manifest(tmp_path / "images")
    manifest.point_weight[np.flatnonzero(manifest.split == "train")[::2]] = 0  # half without collected clicks
    path = manifest_module.write(manifest, tmp_path / "manifests")
    result = run(TrainConfig(
        manifest_path=str(path), out_dir=str(tmp_path / "run"), model="test_resnet", epochs=1, img_size=32,
        batch_size=4, balanced_batches=True,
    ))
    assert result["status"] == "succeeded" and result["metrics"]["train_loss"] > 0


@pytest.mark.parametrize("values, message", [
    ({"balanced_batches": True, "batch_size": 1}, "balanced_batches: needs batch_size of at least 2"),
    ({"pseudo_label_threshold": 0.0}, "pseudo_label_threshold: 0.0 is not in (0, 1]"),
])
def test_active_learning_options_are_validated(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(manifest_path="", out_dir="", **values)


def unlabelled_train_images(dataset, predictions, version):
    """Train images without a label, each scored by version with a top class and its probability."""
    images = []
    for index, (category_key, probability) in enumerate(predictions):
        data, _ = square_jpeg((220, 40, 40), np.random.default_rng(index))
        image = factories.ImageFactory(dataset=dataset, label=None, split=Split.TRAIN, width=32, height=32,
                                       file=ContentFile(data, name=f"unlabelled-{index}.jpg"))
        ImageScore.objects.create(image=image, model_version=version.name, uncertainty=0.0,
                                  predicted={"top": [[category_key, probability]]})
        images.append(image)
    return images


@pytest.mark.django_db
def test_confident_predictions_become_pseudo_labels_of_the_next_manifest_only():
    dataset, _ = tiny_imagenet_dataset(train_per_class=1, val_per_class=1)
    version = registered_version(dataset)
    registry.promote_model_version(version)
    dataset.refresh_from_db()
    key = dataset.categories.get(index=2).key
    sure, unsure = unlabelled_train_images(dataset, [(key, 0.995), (key, 0.9)], version)
    records_before = ImageNetRecord.objects.count()

    manifest = manifest_for(dataset, pseudo_label_threshold=0.99)

    rows = manifest.source["pseudo_labelled_rows"]
    assert len(rows) == 1 and manifest.image[rows[0]].endswith(sure.file.name.split("/")[-1])
    assert manifest.label[rows[0]] == 2 and manifest.point_weight[rows[0]].sum() == 0
    assert manifest.pseudo_labelled.sum() == 1
    assert manifest.source["pseudo_label_threshold"] == 0.99 and manifest.source["pseudo_label_model"] == version.name
    assert not any(unsure.file.name.split("/")[-1] in path for path in manifest.image)  # 0.9 < 0.99: left out
    assert ImageNetRecord.objects.count() == records_before  # never mixed into the collected records
    assert "pseudo_labelled_rows" not in manifest_for(dataset).source  # only when asked for


@pytest.mark.django_db
def test_a_job_with_pseudo_labels_and_balanced_batches_trains_and_says_so(django_capture_on_commit_callbacks,
                                                                          settings, tmp_path):
    settings.TRAINING_WORK_DIR = tmp_path / "work"
    # No heartbeat during the inline run: on PostgreSQL the heartbeat thread's own connection cannot see the
    # test's uncommitted job row and would take the run for superseded.
    settings.TRAINING_PROGRESS_INTERVAL = 3600
    dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=1)
    version = registered_version(dataset)
    registry.promote_model_version(version)
    dataset.refresh_from_db()
    unlabelled_train_images(dataset, [(dataset.categories.get(index=0).key, 0.999)] * 2, version)

    config = {**TINY_CONFIG, "pseudo_label_threshold": 0.99, "balanced_batches": True}
    with django_capture_on_commit_callbacks(execute=True):
        job = training_jobs.create_training_job(dataset=dataset, config=config, source=TrainingJob.Source.API)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert f"2 train images pseudo-labelled by {version.name} at >= 0.99" in job.log_tail
    assert job.model_version.config["pseudo_label_threshold"] == 0.99


@pytest.mark.django_db
def test_pseudo_labels_leave_the_product_marked_and_never_among_the_collected_records(
        django_capture_on_commit_callbacks, settings, tmp_path):
    settings.TRAINING_WORK_DIR = tmp_path / "work"
    settings.TRAINING_PROGRESS_INTERVAL = 3600  # as above: no heartbeat during the inline run
    dataset, batch = tiny_imagenet_dataset(train_per_class=1, val_per_class=1)
    version = registered_version(dataset)
    registry.promote_model_version(version)
    dataset.refresh_from_db()
    category = dataset.categories.get(index=1)
    pseudo = unlabelled_train_images(dataset, [(category.key, 0.999)], version)[0]
    pseudo_name = pseudo.file.name.split("/")[-1]

    with django_capture_on_commit_callbacks(execute=True):
        job = training_jobs.create_training_job(dataset=dataset, batches=[batch], source=TrainingJob.Source.API,
                                                config={**TINY_CONFIG, "pseudo_label_threshold": 0.99})
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error

    # the run's files: pseudo_labels.json names the model, the threshold and each row, marked as a pseudo-label
    with default_storage.open(job.artifacts["pseudo_labels"]) as handle:
        exported = json.load(handle)
    assert exported["model"] == version.name and exported["threshold"] == 0.99
    assert exported["manifest_hash"] == job.manifest_hash
    assert [(row["image"].split("/")[-1], row["labels"], row["source"]) for row in exported["rows"]] == [
        (pseudo_name, [category.name], "pseudo_label")
    ]
    # the collected records: neither the byproduct export nor the records know the pseudo-labelled image
    out = io.BytesIO()
    labelled = dataset.images.filter(split=Split.TRAIN, label__isnull=False).count()
    assert export_services.write_export(batch, "jsonl", out) == labelled  # one record per clicked train image
    exported = {json.loads(line)["imageID"].split("/")[-1] for line in out.getvalue().decode().splitlines()}
    assert len(exported) == labelled and pseudo.key not in exported
    assert not ImageNetRecord.objects.filter(image=pseudo).exists()
    # without pseudo-labels a run has no such file
    manifest = manifest_for(dataset)
    assert manifest.pseudo_label_file() is None


@pytest.mark.celery_worker
@pytest.mark.slow
def test_a_worker_trains_with_the_papers_options_and_scores_every_acquisition(celery_worker):
    from annotator import packing
    from tests.workers import wait_for
    from training.models import InferenceJob

    dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=1)
    config = {**TINY_CONFIG, "img_size": 64, "method": "patch", "patch_cluster": True, "balanced_batches": True}
    job = training_jobs.create_training_job(dataset=dataset, config=config, source=TrainingJob.Source.API)
    wait_for(lambda: TrainingJob.objects.get(pk=job.pk).is_finished, 300, celery_worker.log_tail)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{celery_worker.log_tail()}"
    metrics = job.model_version.metrics
    assert 0 <= metrics["val_maxboxacc_v2"] <= 1 and "val_localization_curves" in metrics
    assert "train_pseudo_positive_cells" in metrics

    registry.promote_model_version(job.model_version)
    inference = inference_jobs.create_inference_job(job.model_version, uncertainty="unified")
    wait_for(lambda: InferenceJob.objects.get(pk=inference.pk).status in ("succeeded", "failed"), 300,
             celery_worker.log_tail)
    inference.refresh_from_db()
    assert inference.status == JobStatus.SUCCEEDED, inference.error
    scores = ImageScore.objects.filter(model_version=job.model_version.name)
    assert scores.count() == 6
    for score in scores:
        assert set(score.acquisition) == {"entropy", "margin", "inconsistency", "unified"}
        assert score.uncertainty == score.acquisition["unified"]
    dataset.refresh_from_db()
    batch = factories.BatchFactory(dataset=dataset, name="next-round")
    assert packing.build_hits(batch, order="unified").hits >= 1
