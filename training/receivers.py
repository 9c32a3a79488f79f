"""Reactions to annotator's signals and to Celery worker start-up (connected in TrainingConfig.ready)."""
import logging

from celery import signals as celery_signals
from django.db import connections
from django.dispatch import receiver
from django.utils import timezone

from annotator.signals import assignments_decided

from .services import jobs, recovery, triggers

logger = logging.getLogger(__name__)
_worker_started_at = {}


@receiver(assignments_decided, dispatch_uid="training.schedule_training_if_due")
def schedule_training_if_due(sender, batch_ids, **kwargs):
    triggers.schedule_training_for_batches(batch_ids)


@celery_signals.worker_init.connect(dispatch_uid="training.remember_worker_start")
def remember_worker_start(sender=None, **kwargs):
    _worker_started_at["now"] = timezone.now()


@celery_signals.worker_ready.connect(dispatch_uid="training.recover_stale_jobs")
def recover_stale_jobs(sender=None, **kwargs):
    """A starting worker picks up the jobs that died with its previous life (or whose heartbeat went stale)."""
    hostname = getattr(sender, "hostname", None)
    started_at = _worker_started_at.get("now")
    try:
        outcomes = {kind: recovery.recover_stale_jobs(model, hostname=hostname, started_at=started_at)
                    for kind, model in jobs.JOB_KINDS.items()}
    finally:
        # The parent's connection must not be shared with the pool processes it forks.
        connections.close_all()
    for kind, outcome in outcomes.items():
        if outcome["requeued"] or outcome["failed"]:
            logger.warning("worker %s start: %s jobs requeued %s, ended %s", hostname, kind, outcome["requeued"],
                           outcome["failed"])
