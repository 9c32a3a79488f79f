"""Celery tasks of review: each calls the service of the same name."""
from celery import shared_task
from django.db import InterfaceError, OperationalError

from ..models import Batch
from . import services


# A database restart or failover mid-review is retried in seconds (the review is idempotent): with acks_late a task
# that raised is acknowledged all the same, so without the retry the review would wait for the next sweep.
@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_backoff_max=60,
             max_retries=10)
def auto_review(assignment_id):
    decision = services.auto_review(assignment_id)
    return None if decision is None else decision.as_review()


@shared_task
def review_batch(batch_id, apply=False):
    result = services.review_batch(Batch.objects.get(pk=batch_id), apply=apply)
    return {"reviewed": result.reviewed, "rejected": result.rejected, "changed": result.changed}
