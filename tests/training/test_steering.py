"""The model steers the next round: uncertainty (seed 004) orders the next HITs; agreement is a review signal."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils import timezone

from annotator import packing
from annotator.models import Assignment, ImageScore, Split
from tests import factories
from tests.training.job_data import registered_version
from training import selectors, steering
from training.services import inference_jobs, registry
from training.models import InferenceJob, JobStatus


def test_entropy_and_margin_of_known_probabilities():
    probabilities = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert steering.entropy(probabilities) == pytest.approx([0.0, math.log(2), math.log(3)], abs=1e-6)
    assert steering.margin_uncertainty(probabilities) == pytest.approx([0.0, 1.0, 1.0])
    multi_label = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert steering.entropy(multi_label, multi_label=True) == pytest.approx([math.log(2), 0.0], abs=1e-6)
    assert steering.margin_uncertainty(multi_label, multi_label=True) == pytest.approx([1.0, 0.0])


def test_inconsistency_and_unified_score_of_known_flipped_predictions():
    image = np.array([[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]])
    mirrored = np.array([[0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    # Jensen-Shannon with m = (p + q) / 2: opposite certainties -> ln 2; same prediction -> 0;
    # [0.8, 0.2] vs [0.2, 0.8]: m = [0.5, 0.5], 0.8 ln 1.6 + 0.2 ln 0.4 = 0.192745.
    assert steering.inconsistency(image, mirrored) == pytest.approx([math.log(2), 0.0, 0.192745], abs=1e-6)
    scores = steering.acquisition_scores(image, mirrored)
    # unified = entropy x inconsistency; entropy of [0.8, 0.2] = 0.500402
    assert scores["unified"] == pytest.approx([0.0, 0.0, 0.500402 * 0.192745], abs=1e-6)
    # multi-label: each class is (p, 1 - p); the mean over classes
    assert steering.inconsistency([[1.0, 0.5]], [[0.0, 0.5]], multi_label=True) == pytest.approx(
        [math.log(2) / 2], abs=1e-6)


def test_agreement_counts_points_within_the_radius():
    pairs = [((0.5, 0.5), (0.55, 0.5)), ((0.1, 0.1), (0.9, 0.9))]
    assert steering.agreement(pairs) == 0.5
    assert steering.agreement([]) is None


class KnownOutputsModel:
    """Stands in for training.inference: each image's probabilities and points are fixed by its file content."""

    def __init__(self, outputs, multi_label):
        self.outputs, self.multi_label = outputs, multi_label

    def load_model(self, checkpoint_path, device="auto"):
        return SimpleNamespace(class_names=["a", "b"], multi_label=self.multi_label)

    def predict(self, loaded, image_bytes, flip=False):
        """outputs: {content: (probabilities, points[, probabilities on the mirrored image])}."""
        rows = [self.outputs[data] for data in image_bytes]
        probabilities = [row[2] if flip and len(row) > 2 else row[0] for row in rows]
        return np.array(probabilities), np.array([row[1] for row in rows])


@pytest.fixture
def known_model(monkeypatch):
    from training import inference

    def install(outputs, multi_label):
        model = KnownOutputsModel(outputs, multi_label)
        monkeypatch.setattr(inference, "load_model", model.load_model)
        monkeypatch.setattr(inference, "predict", model.predict)

    return install


def images_with_contents(dataset, contents):
    return [
        factories.ImageFactory(dataset=dataset, key=content.decode(), split=Split.TRAIN,
                               file=ContentFile(content, name=f"{content.decode()}.jpg"))
        for content in contents
    ]


def run_inference(version, capture, **options):
    """The version's inference job, run when it commits (tasks run eagerly in tests), as it ended."""
    with capture(execute=True):
        job = inference_jobs.create_inference_job(version, **options)
    job.refresh_from_db()
    return job


def two_class_dataset(**fields):
    dataset = factories.DatasetFactory(**fields)
    for index, key in enumerate(["a", "b"]):
        factories.CategoryFactory(dataset=dataset, key=key, index=index)
    return dataset


def scored_by_a_promoted_model(dataset, uncertainty, django_capture_on_commit_callbacks):
    """(version, job): a model of the dataset (known_model's outputs), promoted, whose inference job succeeded."""
    version = registered_version(dataset)
    registry.promote_model_version(version)
    job = run_inference(version, django_capture_on_commit_callbacks, uncertainty=uncertainty)
    assert job.status == JobStatus.SUCCEEDED
    return version, job


@pytest.mark.django_db
def test_uncertainty_ordering_on_a_model_with_known_outputs(known_model, django_capture_on_commit_callbacks):
    dataset = two_class_dataset(kind="coco")
    sure, unsure, middling, half = images_with_contents(dataset, [b"sure", b"unsure", b"middling", b"half"])
    centre = [[0.5, 0.5], [0.5, 0.5]]
    known_model({
        b"sure": ([0.99, 0.01], centre), b"unsure": ([0.5, 0.5], centre),
        b"middling": ([0.8, 0.3], centre), b"half": ([0.6, 0.45], centre),
    }, multi_label=True)
    version, job = scored_by_a_promoted_model(dataset, "margin", django_capture_on_commit_callbacks)
    assert job.summary["images_scored"] == 4

    ranked = [score.image for score in selectors.images_by_uncertainty(version)]
    assert ranked == [unsure, half, middling, sure]
    assert ImageScore.objects.get(image=sure).predicted["top"][0] == ["a", 0.99]

    assert set(ImageScore.objects.get(image=sure).acquisition) == {"entropy", "margin", "inconsistency", "unified"}
    # The next round's HITs (H4's packing with --order uncertainty) ask about the uncertain images first.
    dataset.refresh_from_db()
    batch = factories.BatchFactory(dataset=dataset, pages_per_hit=2)
    packing.build_hits(batch, order=packing.ORDER_UNCERTAINTY)
    first_hit = batch.hits.get(index=0)
    assert set(first_hit.pages.values_list("image__key", flat=True)) == {"unsure", "half"}


@pytest.mark.django_db
def test_agreement_of_clicks_with_predicted_points_is_a_signal_not_a_decision(known_model,
                                                                             django_capture_on_commit_callbacks):
    dataset = two_class_dataset(kind="imagenet")
    left, right = images_with_contents(dataset, [b"left", b"right"])
    known_model({b"left": ([0.9, 0.1], [[0.2, 0.5]]), b"right": ([0.1, 0.9], [[0.8, 0.5]])}, multi_label=False)
    hit = factories.HitFactory(batch=factories.BatchFactory(dataset=dataset))
    careful = factories.AssignmentFactory(hit=hit, state=Assignment.State.APPROVED)
    sloppy = factories.AssignmentFactory(hit=hit, state=Assignment.State.SUBMITTED)
    for assignment, clicks in ((careful, {left: (0.22, 0.5), right: (0.8, 0.45)}),
                               (sloppy, {left: (0.9, 0.9), right: (0.78, 0.5)})):
        page = factories.HitPageFactory(hit=hit)
        for image, (x, y) in clicks.items():
            factories.ImageNetRecordFactory(assignment=assignment, page=page, image=image,
                                            selected_record=[{"x": x, "y": y, "time": 1}])
    version = registered_version(dataset)

    job = run_inference(version, django_capture_on_commit_callbacks)
    assert job.summary["assignments_scored"] == 2 and job.summary["workers_scored"] == 2

    careful.refresh_from_db()
    sloppy.refresh_from_db()
    assert careful.model_agreement == 1.0 and careful.worker.model_agreement == 1.0
    assert sloppy.model_agreement == 0.5
    sloppy.worker.refresh_from_db()
    assert sloppy.worker.model_agreement == 0.5
    assert sloppy.state == Assignment.State.SUBMITTED  # still waiting for review: nothing was decided


@pytest.mark.django_db
def test_inference_with_a_model_of_another_dataset_fails_clearly(known_model, django_capture_on_commit_callbacks):
    dataset = factories.DatasetFactory()
    factories.CategoryFactory(dataset=dataset, index=0)
    images_with_contents(dataset, [b"x"])
    known_model({b"x": ([1.0, 0.0], [[0.5, 0.5]])}, multi_label=False)
    job = run_inference(registered_version(dataset), django_capture_on_commit_callbacks)
    assert job.status == JobStatus.FAILED
    assert "has 2 classes" in job.error and "1" in job.error
    assert not ImageScore.objects.exists()


@pytest.mark.django_db
def test_a_redelivered_inference_message_finishes_the_job_its_dead_worker_left_running(known_model):
    dataset = two_class_dataset()
    images_with_contents(dataset, [b"x"])
    known_model({b"x": ([0.7, 0.3], [[0.5, 0.5]])}, multi_label=False)
    job = InferenceJob.objects.create(model_version=registered_version(dataset), status=JobStatus.RUNNING,
                                      celery_task_id="delivery-1", heartbeat_at=timezone.now(),
                                      attempts=1)  # its worker was killed mid-run

    inference_jobs.run_inference_job(job.pk, task_id="another-delivery")
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # a duplicate message does not start a second run

    inference_jobs.run_inference_job(job.pk, task_id="delivery-1")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.summary["images_scored"] == 1


@pytest.mark.django_db
def test_inconsistency_order_asks_first_about_the_images_whose_mirror_changes_the_prediction(
        known_model, django_capture_on_commit_callbacks):
    dataset = two_class_dataset(kind="coco")
    steady, flips, wavers, unsure = images_with_contents(dataset, [b"steady", b"flips", b"wavers", b"unsure"])
    centre = [[0.5, 0.5], [0.5, 0.5]]
    known_model({  # (probabilities, points, probabilities on the mirrored image)
        b"steady": ([0.99, 0.01], centre, [0.99, 0.01]), b"flips": ([0.9, 0.1], centre, [0.1, 0.9]),
        b"wavers": ([0.7, 0.3], centre, [0.5, 0.5]), b"unsure": ([0.5, 0.5], centre, [0.5, 0.5]),
    }, multi_label=True)
    scored_by_a_promoted_model(dataset, "inconsistency", django_capture_on_commit_callbacks)
    assert ImageScore.objects.get(image=unsure).uncertainty == pytest.approx(0.0, abs=1e-9)

    dataset.refresh_from_db()
    by_inconsistency = factories.BatchFactory(dataset=dataset, pages_per_hit=1)
    packing.build_hits(by_inconsistency, order="inconsistency")
    assert [by_inconsistency.hits.get(index=i).pages.get().image.key for i in range(2)] == ["flips", "wavers"]
    by_entropy = factories.BatchFactory(dataset=dataset, pages_per_hit=1)
    packing.build_hits(by_entropy, order="entropy")
    assert by_entropy.hits.get(index=0).pages.get().image.key == "unsure"
    by_unified = factories.BatchFactory(dataset=dataset, pages_per_hit=1)
    packing.build_hits(by_unified, order="unified")  # unsure has no inconsistency, steady no entropy
    assert [by_unified.hits.get(index=i).pages.get().image.key for i in range(2)] == ["flips", "wavers"]


@pytest.mark.django_db
def test_an_acquisition_order_the_scores_lack_is_refused_and_writes_nothing():
    dataset = factories.DatasetFactory(kind="coco", active_model_version="old-model")
    image = factories.ImageFactory(dataset=dataset, split=Split.TRAIN)
    ImageScore.objects.create(image=image, model_version="old-model", uncertainty=0.3)  # scored before acquisition
    batch = factories.BatchFactory(dataset=dataset)
    with pytest.raises(ValidationError, match="the scores of old-model have no unified; run its inference again"):
        packing.build_hits(batch, order="unified")
    assert not batch.hits.exists()
