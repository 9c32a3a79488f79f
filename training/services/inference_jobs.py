"""Inference jobs: a model version scores its dataset's images (uncertainty, top classes, predicted points) and the
agreement of each assignment and worker with the predicted points, which steer the next collection round."""
import collections
import logging
import shutil
import tempfile

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from annotator.models import Assignment, ImageScore, Worker

from ..models import InferenceJob, JobStatus
from . import jobs

logger = logging.getLogger(__name__)


def create_inference_job(version, *, uncertainty="entropy", created_by=None, enqueue=True):
    """A queued inference job, sent to Celery on commit (unless enqueue is False: see create_training_job)."""
    with transaction.atomic():
        job = InferenceJob.objects.create(
            model_version=version, uncertainty=uncertainty, created_by=created_by, celery_task_id=jobs.new_task_id()
        )
        if enqueue:
            jobs.send_after_commit(job)
    return job


def run_inference_job(job_id, *, task_id, hostname="", progress_listener=None):
    """Score every train image of the version's dataset (ImageScore: uncertainty, top classes, predicted points),
    then the agreement of each assignment and worker with the predicted points.

    Scoring overwrites its own rows, so a delivery that takes the job up again (the broker's redelivery of a message
    whose worker died, or the sweeper's requeue) starts it over."""
    job = jobs.claim(InferenceJob, job_id, task_id=task_id, hostname=hostname)
    if job is None:
        return None
    job = InferenceJob.objects.select_related("model_version__dataset").get(pk=job.pk)
    try:
        with jobs.Heartbeat(job) as heartbeat:
            summary = _score_dataset(job, heartbeat, progress_listener)
    except Exception as error:  # noqa: BLE001 (any failure ends the job as failed, with the reason)
        logger.exception("inference job %s failed", job.pk)
        jobs.fail(job, task_id, error)
        return None
    if summary is None:
        jobs.end_delivery(job, task_id, JobStatus.CANCELLED)
        return None
    jobs.end_delivery(job, task_id, JobStatus.SUCCEEDED, summary=summary)
    logger.info("inference job %s with %s: %s", job.pk, job.model_version.name, summary)
    return summary


INFERENCE_BATCH_SIZE = 32


def _score_dataset(job, heartbeat, progress_listener=None):
    """The job's summary, or None when it was cancelled or superseded between two chunks of images."""
    from .. import inference, steering

    version = job.model_version
    dataset = version.dataset
    categories = list(dataset.categories.order_by("index").values_list("key", flat=True))
    images = list(dataset.images.filter(split="train").order_by("pk"))
    with tempfile.NamedTemporaryFile(suffix=".pt") as local_checkpoint:
        with default_storage.open(version.checkpoint.name, "rb") as stored:
            shutil.copyfileobj(stored, local_checkpoint)
        local_checkpoint.flush()
        loaded = inference.load_model(local_checkpoint.name, device=version.config.get("device", "auto"))
    if len(loaded.class_names) != len(categories):
        raise ValueError(
            f"model {version.name} has {len(loaded.class_names)} classes, dataset {dataset.name} {len(categories)}"
        )
    predicted_points = {}
    for start in range(0, len(images), INFERENCE_BATCH_SIZE):
        if heartbeat.should_stop():
            return None
        chunk = images[start:start + INFERENCE_BATCH_SIZE]
        image_bytes = []
        for image in chunk:
            with image.file.open("rb") as handle:
                image_bytes.append(handle.read())
        probabilities, points = inference.predict(loaded, image_bytes)
        flipped_probabilities, _ = inference.predict(loaded, image_bytes, flip=True)
        scores = steering.acquisition_scores(probabilities, flipped_probabilities, loaded.multi_label)
        rows = []
        for position, (image, image_probabilities, image_points) in enumerate(zip(chunk, probabilities, points)):
            predicted = _predicted_record(image_probabilities, image_points, categories, loaded.multi_label)
            predicted_points[image.pk] = predicted["points"] if loaded.multi_label else predicted["point"]
            acquisition = {measure: float(values[position]) for measure, values in scores.items()}
            rows.append(ImageScore(image=image, model_version=version.name, uncertainty=acquisition[job.uncertainty],
                                   acquisition=acquisition, predicted=predicted))
        ImageScore.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["image", "model_version"],
            update_fields=["uncertainty", "acquisition", "predicted"],
        )
        progress = {"images_done": start + len(chunk), "images_total": len(images)}
        heartbeat.write(progress=progress, heartbeat_at=timezone.now())
        if progress_listener is not None:
            progress_listener(progress)
    agreement_summary = score_model_agreement(dataset, predicted_points, multi_label=loaded.multi_label)
    return {"images_scored": len(images), "uncertainty": job.uncertainty, **agreement_summary}


def _predicted_record(probabilities, points, categories, multi_label, top=3):
    """ImageScore.predicted: the top classes with their probabilities and the predicted point(s)."""
    order = np.argsort(-probabilities)[:top]
    record = {"top": [[categories[i], round(float(probabilities[i]), 6)] for i in order]}
    if multi_label:
        record["points"] = {categories[i]: [round(float(x), 5), round(float(y), 5)] for i, (x, y) in enumerate(points)}
    else:
        record["point"] = [round(float(points[0][0]), 5), round(float(points[0][1]), 5)]
    return record


def score_model_agreement(dataset, predicted_points, *, multi_label):
    """Assignment.model_agreement and Worker.model_agreement: share of a worker's clicks (ImageNet-style: first
    selecting click) or final icon positions (COCO-style) within steering.AGREEMENT_RADIUS of the model's points.

    predicted_points: {image id: (x, y)} ImageNet-style, {image id: {category key: (x, y)}} COCO-style.
    A signal for review, never a decision: nothing is approved or rejected here.
    """
    from .. import steering

    decided_or_submitted = [Assignment.State.SUBMITTED, Assignment.State.APPROVED, Assignment.State.REJECTED]
    assignments = Assignment.objects.filter(hit__batch__dataset=dataset, state__in=decided_or_submitted)
    records_name = "coco_records" if multi_label else "imagenet_records"
    pairs_of = steering.coco_pairs if multi_label else steering.imagenet_pairs
    pairs_by_worker = collections.defaultdict(list)
    scored = []
    for assignment in assignments.prefetch_related(records_name):
        pairs = pairs_of(getattr(assignment, records_name).all(), predicted_points)
        assignment.model_agreement = steering.agreement(pairs)
        if assignment.model_agreement is not None:
            scored.append(assignment)
            pairs_by_worker[assignment.worker_id] += pairs
    with transaction.atomic():
        Assignment.objects.bulk_update(scored, ["model_agreement"], batch_size=500)
        for worker_id, pairs in pairs_by_worker.items():
            Worker.objects.filter(pk=worker_id).update(model_agreement=steering.agreement(pairs))
    return {"assignments_scored": len(scored), "workers_scored": len(pairs_by_worker)}
