"""The sweeper: queue again the work after commit that a broker outage or a dead Celery worker left undone.

A submission's review and a decision's market call are queued after commit (config.celery.send_on_commit); with the
broker down they are not queued at all, and a worker killed mid-task leaves its message unacknowledged (with Redis
it is not redelivered before the visibility timeout, a day). Beat runs sweep_work every SWEEP_INTERVAL seconds
(annotator.tasks.sweep_work); cron can run `manage.py sweep_work`. Every task it queues is idempotent: the review of
an assignment already decided and the market call of a decision the market already has change nothing.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from config.celery import send_task

from .models import Assignment, Event, ExportJob, Provider

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
    last_known = (Event.objects.filter(assignment=OuterRef("pk"), data__has_key="market_decision")
                  .order_by("-created_at", "-id").values("data__market_decision")[:1])
    candidates = (
        Assignment.objects.filter(
            state__in=(Assignment.State.APPROVED, Assignment.State.REJECTED),
            reviewed_at__lt=now - timedelta(seconds=older_than), reviewed_at__gte=now - DECISION_LOOKBACK,
        )
        .exclude(hit__batch__provider=Provider.LINK).exclude(external_id="")
        .annotate(market_decision=Subquery(last_known)).order_by("reviewed_at", "pk")
    )
    return [
        assignment for assignment in candidates
        if assignment.market_decision is None
        or (assignment.market_decision == Assignment.State.REJECTED and assignment.state == Assignment.State.APPROVED)
    ]


def unstarted_exports(older_than):
    """Export jobs still pending more than older_than seconds after they were created (never queued, or lost)."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return ExportJob.objects.filter(status=ExportJob.Status.PENDING, created_at__lt=cutoff).order_by("created_at", "pk")


def sweep_work(*, older_than=None, inline=False, limit=1000):
    """Queue the review of every assignment left submitted and the market call of every decision the market lacks;
    inline does the work here instead (cron, with the broker or every worker down).

    At most `limit` of each per sweep; the first send the broker refuses ends the sweep (the next one goes on).
    Returns {"reviews": n, "decisions": n, "exports": n} queued (or done, inline).
    """
    from .exports import services as export_services
    from .exports import tasks as export_tasks
    from .providers import services as provider_services
    from .providers import tasks as provider_tasks
    from .review import services as review_services
    from .review import tasks as review_tasks

    older_than = settings.SWEEP_AFTER if older_than is None else older_than
    outcome = {"reviews": 0, "decisions": 0, "exports": 0}
    work = (
        ("reviews", unreviewed_assignments(older_than).values_list("pk", flat=True)[:limit],
         review_tasks.auto_review, review_services.auto_review),
        ("decisions", [a.pk for a in undelivered_decisions(older_than)[:limit]],
         provider_tasks.send_decision, lambda pk: provider_services.send_decision(Assignment(pk=pk))),
        ("exports", unstarted_exports(older_than).values_list("pk", flat=True)[:limit],
         export_tasks.run_export_job, export_services.run_export_job),
    )
    for key, ids, task, do_now in work:
        for pk in ids:
            if inline:
                do_now(pk)
            elif not send_task(task, [pk]):
                logger.warning("sweep stopped: the broker is unreachable (%s %s queued so far)", outcome[key], key)
                return outcome
            outcome[key] += 1
    if any(outcome.values()):
        logger.warning("sweep %s: %s reviews, %s market decisions, %s exports left undone",
                       "did" if inline else "queued", outcome["reviews"], outcome["decisions"], outcome["exports"])
    return outcome
