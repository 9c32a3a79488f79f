"""Annotator's decisions reach the market: each signal queues its Celery task once the transaction commits.

Queueing is robust: a broker failure is logged and never fails the worker's or admin's request; the decision is
in the database, and the next sync_hits sends whatever the market is missing.
"""
import uuid
from functools import partial

from django.db import transaction
from django.dispatch import receiver

from annotator import signals

from . import tasks


@receiver(signals.assignment_decided, dispatch_uid="providers.queue_decision")
def queue_decision(sender, assignment, **kwargs):
    transaction.on_commit(partial(tasks.send_decision.delay, assignment.pk), robust=True)


@receiver(signals.bonus_granted, dispatch_uid="providers.queue_bonus")
def queue_bonus(sender, assignment, amount, reason, **kwargs):
    # One key per grant, fixed now: every retry of the task pays this grant and no other.
    request_key = uuid.uuid4().hex
    transaction.on_commit(
        partial(tasks.pay_bonus.delay, assignment.pk, str(amount), reason, request_key), robust=True
    )


@receiver(signals.hit_needs_repost, dispatch_uid="providers.queue_repost")
def queue_repost(sender, hit, count, **kwargs):
    target_max_assignments = hit.max_assignments + count
    transaction.on_commit(
        partial(tasks.repost_hit.delay, hit.pk, count, target_max_assignments), robust=True
    )
