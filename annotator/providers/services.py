"""Market operations as services: idempotent, audited, safe to retry. Celery tasks and commands call these.

Each operation checks the event log for its own key before touching the market, so a retried task never
pays, re-posts or publishes twice; MTurk's UniqueRequestToken (derived from the same keys) covers the
window between a market call and the event that records it.
"""
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from tqdm import tqdm

from annotator import events, signals
from annotator.models import Assignment, Batch, Event, Hit, Provider, Worker

from .base import get_provider, provider_named

logger = logging.getLogger(__name__)

DEFAULT_REJECTION_FEEDBACK = "Your submission did not meet the task's requirements."


def publish_batch(batch, *, show_progress=False):
    """Publish the batch's unpublished HITs; returns {hit index: task URL or market HIT id} for every HIT."""
    provider = get_provider(batch)
    hits = list(batch.hits.select_related("batch").order_by("index"))
    if not hits:
        raise ValidationError({"batch": f"batch {batch.name} has no HITs: pack it first with build_hits"})
    pending = [hit for hit in hits if hit.status == Hit.Status.PENDING]
    # A HIT with a market id but still pending was created by an attempt that stopped before recording it.
    to_create = [hit for hit in pending if not hit.external_id]
    references = {}
    if to_create:
        progress = tqdm(to_create, desc=f"publish {batch.name}", disable=not show_progress)
        references = provider.publish(batch, progress)
    now = timezone.now()
    with transaction.atomic():
        for hit in pending:
            hit.status = Hit.Status.PUBLISHED
            hit.published_at = now
            hit.save(update_fields=["status", "published_at"])
            events.published_hit(hit=hit, provider=provider.name,
                                 reference=references.get(hit.pk, hit.external_id)).save()
        if batch.status == Batch.Status.DRAFT:
            batch.status = Batch.Status.PUBLISHED
            batch.save(update_fields=["status"])
            events.published_batch(batch=batch, provider=provider.name, hits=len(pending)).save()
    logger.info("batch %s: published %d HITs on %s", batch.name, len(pending), provider.name)
    return {hit.index: hit.external_id or provider.task_url(hit) for hit in hits}


def sync_batch(batch):
    """Fetch the market's assignments of every published HIT into our rows, then send the decisions it lacks."""
    provider = get_provider(batch)
    result = provider.sync(batch)
    result.decisions_sent = send_missing_decisions(batch)
    events.synced_batch(batch=batch, provider=provider.name, hits=result.hits, created=result.created,
                        updated=result.updated, decisions_sent=result.decisions_sent).save()
    return result


def sync_market_batches(provider):
    """Queue a sync of every published batch of the provider: beat runs it for Prolific every PROLIFIC_SYNC_INTERVAL
    seconds, for the webhook calls that never arrived. Returns the batch ids."""
    from config.celery import send_task

    from . import tasks

    batch_ids = list(Batch.objects.filter(provider=provider, status=Batch.Status.PUBLISHED)
                     .order_by("pk").values_list("pk", flat=True))
    for batch_id in batch_ids:
        send_task(tasks.sync_batch, [batch_id])
    return batch_ids


@dataclass
class MarketAssignment:
    """One assignment (Prolific: submission) as its market reports it, in our terms."""

    worker_id: str
    assignment_id: str
    status: str  # the market's own word, kept in the SYNCED event
    # What it means here: SUBMITTED, APPROVED, REJECTED, RETURNED, EXPIRED; None while the worker is still at it.
    state: str | None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    feedback: str | None = None
    claimed_completion_code: str | None = None  # the code the worker gave the market (MTurk's answer), if it says


@transaction.atomic
def mirror_market_assignment(hit, market, *, provider, source="sync"):
    """Bring one market assignment into our rows; returns (created, updated) as 0/1. Every market's sync (and
    Prolific's webhook) goes through here.

    An open assignment the market returned or timed out gives its place back (RETURNED / EXPIRED); one the market shows
    submitted without our submit is submitted, for review to judge what it holds (rule 4 when we hold nothing); a
    decision taken on the market (auto-approval, its own site) is applied here as the market's; a decision the market
    has and we have too is recorded as known, so it is never sent again. A SYNCED event records each change of the
    market's status."""
    worker, _ = Worker.objects.get_or_create(provider=provider, external_id=market.worker_id)
    assignment = (
        Assignment.objects.select_for_update().filter(hit=hit, worker=worker).first()
        or Assignment.objects.select_for_update().filter(hit=hit, external_id=market.assignment_id).first()
    )
    if assignment is None and (market.state is None or market.state in Assignment.RELEASED_STATES):
        return 0, 0  # the worker never reached our page, or has not yet: nothing of ours to change
    created = assignment is None
    if created:
        assignment = Assignment(hit=hit, worker=worker, state=Assignment.State.SUBMITTED,
                                interface_variant=hit.batch.interface_variant)
    previous_state = assignment.state
    changed = created or assignment.external_id != market.assignment_id
    assignment.external_id = market.assignment_id
    released = market.state in Assignment.RELEASED_STATES
    if assignment.state in Assignment.OPEN_STATES and market.state is not None:
        # Returned or timed out: the place is free again. Submitted on the market without our submit: review decides.
        assignment.transition(market.state if released else Assignment.State.SUBMITTED)
        changed = True
    if assignment.state == Assignment.State.SUBMITTED and not assignment.submitted_at:
        assignment.submitted_at = market.submitted_at
    market_decision = market.state if market.state in Assignment.DECIDED_STATES else None
    decided_on_market = market_decision is not None and assignment.state == Assignment.State.SUBMITTED
    if decided_on_market:
        assignment.transition(market_decision)
        assignment.reviewed_at = market.decided_at
        if market.feedback is not None:
            assignment.feedback = market.feedback
        changed = True
    known = market_decision is not None and market_decision == assignment.state
    last_status = None if created else events.last_market_status(assignment)
    if not changed and last_status == market.status:
        return 0, 0
    if changed:
        assignment.save()
    events.synced_assignment(assignment=assignment, worker=worker, provider=provider, source=source,
                             market_status=market.status, claimed_completion_code=market.claimed_completion_code,
                             market_decision=market_decision if known else None).save()
    if released and previous_state != assignment.state:
        events.released(assignment=assignment, worker=worker, market_status=market.status).save()
    if assignment.state == Assignment.State.SUBMITTED and (created or previous_state != Assignment.State.SUBMITTED):
        signals.assignment_submitted.send(sender=Assignment, assignment=assignment)
    if decided_on_market:
        signals.assignments_decided.send(sender=Assignment, decided={assignment.pk: Assignment.State.SUBMITTED},
                                         batch_ids={hit.batch_id}, actor=None)
    return int(created), int(not created and changed)


def send_missing_decisions(batch):
    """Send every decision the market does not have yet (a task lost with a broker outage); returns how many."""
    if batch.provider == Provider.LINK:
        return 0
    decided = Assignment.objects.filter(hit__batch=batch, state__in=Assignment.DECIDED_STATES).exclude(external_id="")
    return sum(send_decision(assignment) for assignment in decided)


def send_decision(assignment):
    """Tell the market the assignment's current decision unless it already has it; returns whether it called."""
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker")
            .get(pk=assignment.pk)
        )
        if assignment.state not in Assignment.DECIDED_STATES:
            return False
        known = events.last_market_decision(assignment)
        if known == assignment.state:
            return False
        provider = get_provider(assignment.hit.batch)
        if assignment.state == Assignment.State.APPROVED:
            provider.approve(assignment, override_rejection=known == Assignment.State.REJECTED)
        elif known == Assignment.State.APPROVED:
            logger.warning("assignment %s: the market already paid it; a rejection cannot be sent", assignment.uuid)
            return False
        else:
            provider.reject(assignment, assignment.feedback or DEFAULT_REJECTION_FEEDBACK)
        return True


def bonus_key(assignment, request_key):
    """The idempotency key of one bonus grant (the market's, and the BONUS_REQUESTED / BONUSED events')."""
    return f"bonus:{assignment.uuid}:{request_key}"


def repost_key(hit, target_max_assignments):
    """The idempotency key of one re-post (the market's, and the REPOST_REQUESTED / REPOSTED events')."""
    return f"repost:{hit.pk}:{target_max_assignments}"


def pay_bonus(assignment, amount, reason, request_key):
    """Pay a bonus once per (assignment, request_key); returns whether it paid now."""
    amount = _positive_amount(amount)
    if not reason.strip():
        raise ValidationError({"reason": "a bonus needs a reason the worker can read"})
    key = bonus_key(assignment, request_key)
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker")
            .get(pk=assignment.pk)
        )
        if events.has_key(Event.Type.BONUSED, key, assignment=assignment):
            return False
        provider = get_provider(assignment.hit.batch)
        provider.bonus(assignment, amount, reason, key)
        Assignment.objects.filter(pk=assignment.pk).update(bonus_paid=F("bonus_paid") + amount)
        events.bonused(assignment=assignment, provider=provider.name, amount=amount, reason=reason, key=key).save()
    return True


def repost_hit(hit, count, target_max_assignments):
    """Open `count` more assignments so the HIT reaches target_max_assignments; once per target."""
    if count < 1:
        raise ValidationError({"count": f"{count}: re-post at least one assignment"})
    key = repost_key(hit, target_max_assignments)
    with transaction.atomic():
        hit = Hit.objects.select_for_update(of=("self",)).select_related("batch").get(pk=hit.pk)
        if events.has_key(Event.Type.REPOSTED, key, hit=hit):
            return False
        provider = get_provider(hit.batch)
        provider.repost(hit, count, key)
        hit.max_assignments = max(hit.max_assignments, target_max_assignments)
        hit.status = Hit.Status.PUBLISHED
        hit.save(update_fields=["max_assignments", "status"])
        events.reposted(hit=hit, provider=provider.name, count=count, max_assignments=hit.max_assignments,
                        key=key).save()
    return True


def expire_hit(hit):
    """Stop the HIT from taking new workers; returns whether it expired it now."""
    with transaction.atomic():
        hit = Hit.objects.select_for_update(of=("self",)).select_related("batch").get(pk=hit.pk)
        if hit.status == Hit.Status.EXPIRED:
            return False
        provider = get_provider(hit.batch)
        provider.expire(hit)
        hit.status = Hit.Status.EXPIRED
        hit.expires_at = timezone.now()
        hit.save(update_fields=["status", "expires_at"])
        events.hit_expired(hit=hit, provider=provider.name).save()
    return True


def set_worker_blocked(worker):
    """Tell the worker's market whether they are blocked now (the latest decision wins, however the tasks are
    ordered); returns whether they are blocked."""
    worker = Worker.objects.get(pk=worker.pk)
    provider_named(worker.provider, f"worker {worker}").block(worker, worker.blocked, worker.blocked_reason)
    return worker.blocked


def notify_workers(batch, worker_ids, subject, message):
    """Message the batch's workers once per (subject, message, workers); returns the failures by worker id."""
    if not subject.strip() or not message.strip():
        raise ValidationError({"subject" if not subject.strip() else "message": "must not be empty"})
    workers = list(Worker.objects.filter(pk__in=worker_ids, provider=batch.provider).order_by("pk"))
    missing = set(worker_ids) - {w.pk for w in workers}
    if missing:
        raise ValidationError({"worker_ids": f"not {batch.provider} workers: {sorted(missing)}"})
    digest = hashlib.sha256("\n".join([subject, message, *map(str, sorted(worker_ids))]).encode()).hexdigest()
    key = f"notify:{batch.pk}:{digest[:32]}"
    if events.has_key(Event.Type.NOTIFIED, key, batch=batch):
        return {}
    provider = get_provider(batch)
    failures = provider.notify(batch, workers, subject, message, key)
    events.notified(batch=batch, provider=provider.name, key=key, subject=subject, message=message,
                    workers=len(workers), failures=failures).save()
    return failures


def _positive_amount(amount):
    try:
        amount = Decimal(str(amount)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ValidationError({"amount": f"{amount!r} is not a number of dollars"}) from None
    if amount <= 0:
        raise ValidationError({"amount": f"{amount} must be more than 0"})
    return amount
