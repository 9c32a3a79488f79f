"""Automatic training: a batch with train_every_n_approved schedules a job per N newly approved assignments."""
import logging

from django.conf import settings
from django.db import transaction

from annotator.models import Assignment, Batch

from ..models import BatchTrainingTrigger, JobStatus, ModelVersion, TrainingJob
from .config import train_config_options
from .training_jobs import create_training_job

logger = logging.getLogger(__name__)


def schedule_training_for_batches(batch_ids):
    """Evaluate the trigger of each batch once (a decided chunk of many assignments locks and counts once per
    batch); returns the jobs scheduled."""
    if not settings.TRAINING_ENABLED:
        return []
    batches = Batch.objects.filter(pk__in=batch_ids, train_every_n_approved__gt=0).order_by("pk")
    return [job for batch in batches if (job := schedule_training_if_due(batch)) is not None]


def schedule_training_if_due(batch):
    """Schedule a job when the batch has gained train_every_n_approved more approved assignments since its
    last trigger. The batch row is locked and the count recorded, so one count never schedules two jobs; a
    triggered job of the dataset that has not taken its snapshot yet will train on the new approvals too, so
    none is added beside it (approving many assignments at once schedules one job)."""
    if not settings.TRAINING_ENABLED or not batch.train_every_n_approved:
        return None
    with transaction.atomic():
        batch = Batch.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=batch.pk)
        trigger, _ = BatchTrainingTrigger.objects.get_or_create(batch=batch)
        approved = Assignment.objects.filter(hit__batch=batch, state=Assignment.State.APPROVED).count()
        if approved - trigger.approved_count_at_last_trigger < batch.train_every_n_approved:
            return None
        job = TrainingJob.objects.filter(
            dataset=batch.dataset, source=TrainingJob.Source.TRIGGER, status=JobStatus.QUEUED, manifest_hash=""
        ).first()
        if job is None:
            active = ModelVersion.objects.filter(dataset=batch.dataset, is_active=True).first()
            config = {k: v for k, v in active.config.items() if k in train_config_options()} if active else {}
            job = create_training_job(
                dataset=batch.dataset, config=config, source=TrainingJob.Source.TRIGGER, triggered_by_batch=batch
            )
        trigger.approved_count_at_last_trigger = approved
        trigger.last_job = job
        trigger.save(update_fields=["approved_count_at_last_trigger", "last_job", "updated_at"])
    logger.info("batch %s reached %s approved assignments: training job %s", batch.name, approved, job.pk)
    return job
