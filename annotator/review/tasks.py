"""Celery tasks of review: each calls the service of the same name."""
from celery import shared_task

from ..models import Batch
from . import services


@shared_task
def auto_review(assignment_id):
    decision = services.auto_review(assignment_id)
    return None if decision is None else decision.as_review()


@shared_task
def review_batch(batch_id, apply=False):
    result = services.review_batch(Batch.objects.get(pk=batch_id), apply=apply)
    return {"reviewed": result.reviewed, "rejected": result.rejected, "changed": result.changed}
