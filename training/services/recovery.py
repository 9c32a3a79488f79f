"""Recovering the gpu queue's jobs: requeue or fail the running jobs whose worker is gone, and send again the queued
jobs whose message the broker never took or lost (the sweeper: beat, or `manage.py recover_training_jobs`)."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import JobStatus
from . import jobs

logger = logging.getLogger(__name__)


def recover_stale_jobs(model, *, hostname=None, started_at=None):
    """Requeue (a training job resumes from its last checkpoint; scoring starts over, overwriting its rows) or fail
    every running job of model whose worker is gone.

    Gone means a heartbeat older than TRAINING_HEARTBEAT_TIMEOUT, or, for a worker that has just started as
    hostname at started_at, any job it was running with a heartbeat from before it started.
    Returns {"requeued": [job ids], "failed": [job ids]}.
    """
    name = model._meta.verbose_name
    stale_before = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    lost = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before)
    if hostname and started_at:
        lost |= Q(worker_hostname=hostname, heartbeat_at__lt=started_at)
    outcome = {"requeued": [], "failed": []}
    for job_id in model.objects.filter(lost, status=JobStatus.RUNNING).values_list("pk", flat=True):
        with transaction.atomic():
            job = model.objects.select_for_update().filter(lost, pk=job_id, status=JobStatus.RUNNING).first()
            if job is None:
                continue
            lost_on = job.worker_hostname or "an unknown worker"
            if job.cancel_requested:
                jobs.finish(model, job.pk, JobStatus.CANCELLED, error=f"cancelled; its worker {lost_on} was lost")
                outcome["failed"].append(job.pk)
            elif job.attempts >= settings.TRAINING_MAX_ATTEMPTS:
                jobs.finish(model, job.pk, JobStatus.FAILED, error=jobs.lost_too_often(job))
                outcome["failed"].append(job.pk)
            else:
                job.status = JobStatus.QUEUED
                job.celery_task_id = jobs.new_task_id()
                job.save(update_fields=["status", "celery_task_id"])
                jobs.send_after_commit(job)
                outcome["requeued"].append(job.pk)
            logger.warning("%s %s lost its worker %s: %s", name, job.pk, lost_on,
                           "requeued" if job.pk in outcome["requeued"] else "ended")
    return outcome


def _broker_holdings(task_ids):
    """(messages waiting in the gpu queue, which of task_ids the workers hold: reserved or running), read through
    kombu's and Celery's public APIs, or None when the broker cannot be read."""
    from config.celery import app

    from .. import tasks

    queue = app.amqp.router.route({}, tasks.run_training_job.name)["queue"]
    try:
        with app.connection_for_read() as connection:
            waiting = queue(connection.default_channel).queue_declare().message_count
        replies = app.control.inspect(timeout=1).query_task(*task_ids) if task_ids else {}
    except Exception as error:  # noqa: BLE001 (an unreadable broker: only jobs marked NOT_QUEUED are sent again)
        logger.warning("sweep: the broker's queue %s could not be read (%s)", queue.name, error)
        return None
    return waiting, {task_id for held in (replies or {}).values() for task_id in held}


def resend_unsent_jobs():
    """Send again the queued jobs the broker did not take (NOT_QUEUED) or has lost (a Redis broker restarted without
    persistence: the gpu queue and the workers hold fewer messages than there are queued jobs), each under a new
    task id: which message was lost cannot be told, so every job queued for longer than SWEEP_AFTER that no worker
    holds is sent again, and a message that turns up after all is a duplicate the claim skips.
    Returns {"training": [job ids], "inference": [job ids]} of the jobs the broker took now."""
    cutoff = timezone.now() - timedelta(seconds=settings.SWEEP_AFTER)
    unsent, sent = {}, {}
    for kind, model in jobs.JOB_KINDS.items():
        queued = model.objects.filter(status=JobStatus.QUEUED)
        unsent[kind] = set(queued.filter(error=jobs.NOT_QUEUED).values_list("pk", flat=True))
        sent[kind] = list(queued.exclude(error=jobs.NOT_QUEUED).values_list("pk", "celery_task_id", "created_at"))
    holdings = _broker_holdings([task_id for rows in sent.values() for _, task_id, _ in rows])
    if holdings is not None:
        waiting, held = holdings
        expected = {kind: [(pk, created_at) for pk, task_id, created_at in rows if task_id not in held]
                    for kind, rows in sent.items()}
        if sum(map(len, expected.values())) > waiting:
            for kind, rows in expected.items():
                unsent[kind] |= {pk for pk, created_at in rows if created_at < cutoff}
    outcome = {kind: [] for kind in jobs.JOB_KINDS}
    for kind, model in jobs.JOB_KINDS.items():
        for job_id in sorted(unsent[kind]):
            task_id = jobs.new_task_id()
            if not model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(celery_task_id=task_id, error=""):
                continue
            if not jobs.send(model, job_id, task_id):
                logger.warning("sweep: the broker is still unreachable; %s job %s stays queued", kind, job_id)
                return outcome
            logger.warning("sweep: %s job %s was not in the broker; sent again", kind, job_id)
            outcome[kind].append(job_id)
    return outcome


def sweep_jobs():
    """The training sweeper: requeue or fail the training and inference jobs whose worker is gone, and send the
    queued jobs a broker outage left unsent.
    Returns {"requeued", "failed", "inference_requeued", "inference_failed", "resent"}."""
    training, inference = (recover_stale_jobs(jobs.JOB_KINDS[kind]) for kind in ("training", "inference"))
    resent = resend_unsent_jobs()
    return {
        "requeued": training["requeued"], "failed": training["failed"],
        "inference_requeued": inference["requeued"], "inference_failed": inference["failed"],
        "resent": resent["training"] + resent["inference"],
    }
