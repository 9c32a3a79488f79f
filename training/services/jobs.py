"""The one lifecycle of the gpu queue's jobs (training.models.Job: TrainingJob, InferenceJob).

A job is created queued and its message sent once the transaction commits; a delivery claims it (a redelivery of the
same message, or any delivery of a job whose heartbeat went stale, takes it up again), beats a heartbeat while it
runs, and finishes it; a delivery whose job was requeued under another task id is superseded and writes nothing
more. recovery.py requeues or fails the jobs whose worker is gone and sends again what the broker never took.
"""
import logging
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import FINISHED_STATUSES, InferenceJob, JobStatus, TrainingJob

logger = logging.getLogger(__name__)

JOB_KINDS = {"training": TrainingJob, "inference": InferenceJob}
# On a queued job whose message the broker did not take; sweep_jobs sends it again (and clears this).
NOT_QUEUED = "not queued yet: the broker was unreachable; the sweeper sends it again"


def new_task_id():
    return str(uuid.uuid4())


def send_after_commit(job):
    """Send the job's message once the surrounding transaction commits (nothing is sent for a write rolled back)."""
    model, job_id, task_id = type(job), job.pk, job.celery_task_id
    transaction.on_commit(lambda: send(model, job_id, task_id))


def send(model, job_id, task_id):
    """Send the job's message; with the broker down the job stays queued, marked NOT_QUEUED for sweep_jobs."""
    from config.celery import send_task

    from .. import tasks

    task = {TrainingJob: tasks.run_training_job, InferenceJob: tasks.run_inference_job}[model]
    if send_task(task, [job_id], task_id=task_id):
        return True
    model.objects.filter(pk=job_id, status=JobStatus.QUEUED, celery_task_id=task_id).update(error=NOT_QUEUED)
    return False


def finish(model, job_id, status, *, only_if=Q(), **fields):
    """End the job unless it is over already (only_if: e.g. only while this delivery owns it)."""
    now = timezone.now()
    return model.objects.filter(Q(pk=job_id) & only_if).exclude(status__in=FINISHED_STATUSES).update(
        status=status, finished_at=now, heartbeat_at=now, **fields
    )


def end_delivery(job, task_id, status, **fields):
    """End the job as delivery task_id's outcome, unless another delivery owns it now (the sweeper requeued it)."""
    return finish(type(job), job.pk, status, only_if=Q(celery_task_id=task_id), **fields)


def fail(job, task_id, reason, **fields):
    """End the job as failed with reason (an exception: its type and message), unless another delivery owns it."""
    error = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    return end_delivery(job, task_id, JobStatus.FAILED, error=error, **fields)


def lost_too_often(job):
    """The error of a job whose worker was lost TRAINING_MAX_ATTEMPTS times."""
    return (f"its worker {job.worker_hostname or 'an unknown worker'} was lost {job.attempts} times"
            f" (TRAINING_MAX_ATTEMPTS={settings.TRAINING_MAX_ATTEMPTS})")


def cancel(job, *, actor=None):
    """A queued job is cancelled at once; a running one stops at its next step (cooperative)."""
    model, name = type(job), type(job)._meta.verbose_name
    with transaction.atomic():
        job = model.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise ValidationError({"status": f"{name} {job.pk} already {job.status}"})
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    if job.status == JobStatus.QUEUED:
        finish(model, job.pk, JobStatus.CANCELLED, only_if=Q(status=JobStatus.QUEUED))
    logger.info("%s %s: cancel requested by %s", name, job.pk, actor or "system")
    job.refresh_from_db()
    return job


def claim(model, job_id, *, task_id, hostname):
    """Mark the job running for this delivery, or return None when another delivery owns it or it is over.

    A queued job is claimed; a running one only when this is the same message redelivered (its previous
    holder died, so the broker gave it back) or when its heartbeat went stale.
    """
    name = model._meta.verbose_name
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            logger.warning("%s %s does not exist; message dropped", name, job_id)
            return None
        orphaned = job.status == JobStatus.RUNNING and (
            job.celery_task_id == task_id or job.heartbeat_at is None or job.heartbeat_at < stale_before
        )
        if job.status != JobStatus.QUEUED and not orphaned:
            logger.info("%s %s is %s (task %s); delivery %s skipped", name, job_id, job.status, job.celery_task_id,
                        task_id)
            return None
        if job.cancel_requested:
            finish(model, job.pk, JobStatus.CANCELLED)
            return None
        if job.attempts >= settings.TRAINING_MAX_ATTEMPTS:
            finish(model, job.pk, JobStatus.FAILED, error=lost_too_often(job))
            return None
        if job.attempts:
            logger.warning("%s %s: attempt %s takes it up again", name, job.pk, job.attempts + 1)
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.celery_task_id = task_id
        job.worker_hostname = hostname or ""
        job.heartbeat_at = now
        job.started_at = job.started_at or now
        job.error = "" if job.error == NOT_QUEUED else job.error
        job.save(update_fields=[
            "status", "attempts", "celery_task_id", "worker_hostname", "heartbeat_at", "started_at", "error",
        ])
    return job


class Heartbeat:
    """A thread that, from the moment the job is claimed until the delivery ends, beats the job's heartbeat every
    TRAINING_PROGRESS_INTERVAL (a long step never looks dead, or the sweeper would deliver the job again) and polls
    the cancel flag for should_stop. Once the job row names another delivery (the sweeper requeued a job it thought
    lost) this delivery is superseded: it stops at its next step and write() changes nothing more."""

    def __init__(self, job):
        self.model = type(job)
        self.job_id = job.pk
        self.task_id = job.celery_task_id
        self.superseded = False
        self.interval = settings.TRAINING_PROGRESS_INTERVAL
        self._cancel = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"job-{job.pk}-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopped.set()
        self._thread.join()

    def write(self, **fields):
        """Update the job row while this delivery owns it; returns whether it did."""
        return bool(self.model.objects.filter(pk=self.job_id, celery_task_id=self.task_id).update(**fields))

    def beat_fields(self):
        """What each beat writes besides heartbeat_at (a subclass adds its own)."""
        return {}

    def should_stop(self):
        return self._cancel.is_set()

    def _beat(self):
        try:
            while not self._stopped.wait(self.interval):
                try:
                    self._beat_once()
                except DatabaseError as error:  # a missed beat is retried; only a long silence means "lost"
                    logger.warning("%s %s: heartbeat not written (%s)", self.model._meta.verbose_name, self.job_id,
                                   error)
        finally:
            close_old_connections()

    def _beat_once(self):
        if not self.write(heartbeat_at=timezone.now(), **self.beat_fields()):
            logger.warning("%s %s: delivery %s was superseded (requeued as lost); it stops",
                           self.model._meta.verbose_name, self.job_id, self.task_id)
            self.superseded = True
            self._cancel.set()
            return
        if self.model.objects.filter(pk=self.job_id, cancel_requested=True).exists():
            self._cancel.set()
