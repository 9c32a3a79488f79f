"""Automatic review follows every submission, after the submitting transaction commits.

A broker outage never fails the submission: the review is queued with send_on_commit (logged when the broker is
down), and the sweeper (annotator.sweep) reviews every assignment left submitted.
"""
from django.dispatch import receiver

from config.celery import send_on_commit

from ..signals import assignment_submitted
from . import tasks


@receiver(assignment_submitted, dispatch_uid="review.auto_review_on_submit")
def queue_auto_review(sender, assignment, **kwargs):
    send_on_commit(tasks.auto_review, assignment.pk)
