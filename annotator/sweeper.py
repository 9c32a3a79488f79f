"""The sweeper: queue again the work after commit that a broker outage or a dead Celery worker left undone.

A submission's review, a decision's market call, a bonus grant and a re-post are queued after commit
(config.celery.send_on_commit); with the broker down they are not queued at all, and a worker killed mid-task leaves
its message unacknowledged (with Redis it is not redelivered before the visibility timeout, a day). Beat runs
sweep_work every SWEEP_INTERVAL seconds (annotator.tasks.sweep_work); cron can run `manage.py sweep_work`. Every
task it queues is idempotent: the review of an assignment already decided and the market call of a decision the
market already has change nothing, and a bonus or re-post carries the idempotency key it was recorded with
(BONUS_REQUESTED / REPOST_REQUESTED events), so the market takes it once.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from config.celery import send_task

from . import events
from .models import Assignment, Event, ExportJob, Hit, Provider

logger = logging.getLogger(__name__)

# Decisions older than this are left to sync_hits (which sends whatever the market lacks).
DECISION_LOOKBACK = timedelta(days=7)


def unreviewed_assignments(older_than):
    """Submitted assignments no review has decided, submitted more than older_than seconds ago, oldest first."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return (Assignment.objects.filter(state=Assignment.State.SUBMITTED, submitted_at__lt=cutoff)
            .order_by("submitted_at", "pk"))


def undelivered_decisions(older_than):
    """Decided assignments of market batches (decided more than older_than seconds ago, within DECISION_LOOKBACK)
    whose decision the market has not recorded, and can still take (a paid assignment cannot be rejected)."""
    now = timezone.now()
    candidates = (
        Assignment.objects.filter(
            state__in=Assignment.DECIDED_STATES,
            reviewed_at__lt=now - timedelta(seconds=older_than), reviewed_at__gte=now - DECISION_LOOKBACK,
        )
        .exclude(hit__batch__provider=Provider.LINK).exclude(external_id="")
        .annotate(market_decision=Subquery(events.market_decisions(OuterRef("pk"))[:1])).order_by("reviewed_at", "pk")
    )
    return [
        assignment for assignment in candidates
        if assignment.market_decision is None
        or (assignment.market_decision == Assignment.State.REJECTED and assignment.state == Assignment.State.APPROVED)
    ]


def _requests_not_done(requested_type, done_type, owner, older_than):
    """Events of requested_type (older than older_than seconds, within DECISION_LOOKBACK) whose key no done_type
    event of the same owner ("assignment" or "hit") carries yet, oldest first."""
    now = timezone.now()
    requested = list(
        Event.objects.filter(type=requested_type, created_at__lt=now - timedelta(seconds=older_than),
                             created_at__gte=now - DECISION_LOOKBACK).order_by("created_at", "pk")
    )
    owners = {getattr(event, f"{owner}_id") for event in requested}
    done = events.keys_done(done_type, **{f"{owner}_id__in": owners})
    return [event for event in requested if events.key_of(event) not in done]


def unpaid_bonuses(older_than):
    """Bonus grants (BONUS_REQUESTED) the market has not paid (no BONUSED event with their key)."""
    return _requests_not_done(Event.Type.BONUS_REQUESTED, Event.Type.BONUSED, "assignment", older_than)


def unposted_reposts(older_than):
    """Re-posts (REPOST_REQUESTED) the market has not taken (no REPOSTED event with their key)."""
    return _requests_not_done(Event.Type.REPOST_REQUESTED, Event.Type.REPOSTED, "hit", older_than)


def unstarted_exports(older_than):
    """Export jobs still pending more than older_than seconds after they were created (never queued, or lost)."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return ExportJob.objects.filter(status=ExportJob.Status.PENDING, created_at__lt=cutoff).order_by("created_at", "pk")


def expire_overdue_assignments(limit=1000):
    """Open assignments not submitted within their HIT's assignment duration (past Assignment.deadline) expire, and
    their places on the HITs are free again; the task entry does the same for its HIT, the worker API for its
    assignment. A write in this process, no broker involved. Returns how many expired (at most limit)."""
    from .worker.services import expire_overdue

    expired = expire_overdue(limit=limit)
    if expired:
        logger.warning("sweep expired %d assignments past their deadline", expired)
    return expired


def sweep_work(*, older_than=None, inline=False, limit=1000):
    """Queue the review of every assignment left submitted, the market call of every decision the market lacks, the
    bonus grants and re-posts it never got, and the exports never started; inline does the work here instead (cron,
    with the broker or every worker down).

    At most `limit` of each per sweep; the first send the broker refuses ends the sweep (the next one goes on).
    Returns {"reviews": n, "decisions": n, "bonuses": n, "reposts": n, "exports": n} queued (or done, inline).
    """
    from .exports import services as export_services
    from .exports import tasks as export_tasks
    from .providers import services as provider_services
    from .providers import tasks as provider_tasks
    from .review import services as review_services
    from .review import tasks as review_tasks

    older_than = settings.SWEEP_AFTER if older_than is None else older_than
    outcome = dict.fromkeys(("reviews", "decisions", "bonuses", "reposts", "exports"), 0)
    bonuses = [
        (event.assignment_id, grant.amount, grant.reason, grant.request_key)
        for event in unpaid_bonuses(older_than)[:limit] for grant in [events.bonus_request(event)]
    ]
    reposts = [
        (event.hit_id, repost.count, repost.target_max_assignments)
        for event in unposted_reposts(older_than)[:limit] for repost in [events.repost_request(event)]
    ]
    # (what, the tasks' arguments, the task, the same work done here)
    work = (
        ("reviews", [(pk,) for pk in unreviewed_assignments(older_than).values_list("pk", flat=True)[:limit]],
         review_tasks.auto_review, review_services.auto_review),
        ("decisions", [(a.pk,) for a in undelivered_decisions(older_than)[:limit]],
         provider_tasks.send_decision, lambda pk: provider_services.send_decision(Assignment(pk=pk))),
        ("bonuses", bonuses, provider_tasks.pay_bonus,
         lambda pk, *grant: provider_services.pay_bonus(Assignment.objects.get(pk=pk), *grant)),
        ("reposts", reposts, provider_tasks.repost_hit,
         lambda pk, *repost: provider_services.repost_hit(Hit.objects.get(pk=pk), *repost)),
        ("exports", [(pk,) for pk in unstarted_exports(older_than).values_list("pk", flat=True)[:limit]],
         export_tasks.run_export_job, export_services.run_export_job),
    )
    for key, arguments, task, do_now in work:
        for args in arguments:
            if inline:
                do_now(*args)
            elif not send_task(task, list(args)):
                logger.warning("sweep stopped: the broker is unreachable (%s %s queued so far)", outcome[key], key)
                return outcome
            outcome[key] += 1
    if any(outcome.values()):
        logger.warning("sweep %s: %s left undone", "did" if inline else "queued",
                       ", ".join(f"{n} {key}" for key, n in outcome.items()))
    return outcome
