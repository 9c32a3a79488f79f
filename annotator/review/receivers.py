"""Automatic review follows every submission, after the submitting transaction commits."""
from functools import partial

from django.db import transaction
from django.dispatch import receiver

from ..signals import assignment_submitted
from . import tasks


@receiver(assignment_submitted, dispatch_uid="review.auto_review_on_submit")
def queue_auto_review(sender, assignment, **kwargs):
    transaction.on_commit(partial(tasks.auto_review.delay, assignment.pk))
