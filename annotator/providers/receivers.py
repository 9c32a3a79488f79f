"""Annotator's decisions reach the market: each signal queues its Celery task once the transaction commits.

Queueing is robust: a broker failure is logged and never fails or holds up the worker's or admin's request
(config.celery.send_on_commit); the decision is in the database, and the sweeper (annotator.sweeper) or the next
sync_hits sends whatever the market is missing. A bonus grant and a re-post are recorded first (BONUS_REQUESTED,
REPOST_REQUESTED events, in the same transaction), so the sweeper can send the ones the market never got.
"""
import uuid

from django.dispatch import receiver

from annotator import events, signals
from config.celery import send_on_commit

from . import tasks
from .services import bonus_key, repost_key


@receiver(signals.assignments_decided, dispatch_uid="providers.queue_decision")
def queue_decisions(sender, decided, **kwargs):
    for assignment_id in decided:
        send_on_commit(tasks.send_decision, assignment_id)


@receiver(signals.bonus_granted, dispatch_uid="providers.queue_bonus")
def queue_bonus(sender, assignment, amount, reason, **kwargs):
    # One key per grant, fixed now: every retry of the task pays this grant and no other.
    request_key = uuid.uuid4().hex
    events.bonus_requested(assignment=assignment, key=bonus_key(assignment, request_key), request_key=request_key,
                           amount=amount, reason=reason).save()
    send_on_commit(tasks.pay_bonus, assignment.pk, str(amount), reason, request_key)


@receiver(signals.hit_needs_repost, dispatch_uid="providers.queue_repost")
def queue_repost(sender, hit, count, **kwargs):
    target_max_assignments = hit.max_assignments + count
    events.repost_requested(hit=hit, key=repost_key(hit, target_max_assignments), count=count,
                            target_max_assignments=target_max_assignments).save()
    send_on_commit(tasks.repost_hit, hit.pk, count, target_max_assignments)


@receiver(signals.worker_block_changed, dispatch_uid="providers.queue_block")
def queue_block(sender, worker, **kwargs):
    send_on_commit(tasks.set_worker_blocked, worker.pk)
