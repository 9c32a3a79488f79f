"""Celery tasks of the annotator app: each is a few lines calling the service of the same name."""
from celery import shared_task

from annotator import images, sweeper
from annotator.models import Dataset


@shared_task
def make_display_versions(dataset_id):
    """Make the display versions an import left to the worker (import_* --defer-display)."""
    return images.make_display_versions(Dataset.objects.get(pk=dataset_id))


@shared_task
def sweep_work():
    """Beat runs this every SWEEP_INTERVAL seconds (config.celery): reviews and market calls left undone."""
    return sweeper.sweep_work()


@shared_task
def expire_overdue_assignments():
    """Beat runs this every SWEEP_INTERVAL seconds: open assignments past their deadline expire, freeing places."""
    return sweeper.expire_overdue_assignments()
