"""The `link` provider: any market that sends workers to a URL (Prolific, in-house lists, mailing lists).

Each HIT has a task URL `<PUBLIC_BASE_URL>/task/<hit id>/?<params>`; the query parameter names come from
`batch.provider_config["params"]` ({role: name}, see PARAM_PRESETS). At the end the worker gets the completion
code issued by the worker API's submit and, when `provider_config["completion_url"]` is set, is redirected
there (`{completion_code}` in that URL is replaced by the code).
Decisions and bonuses stay in our database (assignment state, BONUSED events) and leave as a CSV
(`export_decisions`) that the market ingests.
"""
import csv
import logging
from collections import defaultdict
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError

from annotator import events
from annotator.models import Assignment, Event, Provider
from annotator.rules import truncate_feedback

from .base import CrowdProvider, SyncResult

logger = logging.getLogger(__name__)

# Role -> query parameter name; the worker page reads "worker" and "assignment" (annotator.worker.views).
PARAM_PRESETS = {
    "generic": {"worker": "workerId", "assignment": "assignmentId"},
    "prolific": {"worker": "PROLIFIC_PID", "study": "STUDY_ID", "assignment": "SESSION_ID"},
}
DEFAULT_PRESET = "generic"
# How each preset writes a placeholder the market fills in (Prolific's own syntax; ours for in-house lists).
PLACEHOLDER_FORMATS = {"prolific": "{{%%%s%%}}", "generic": "{%s}"}

DECISION_CSV_COLUMNS = [
    "worker_id", "assignment_id", "hit", "decision", "feedback", "bonus", "completion_code",
    "submitted_at", "decided_at",
]


def resolve_params(provider_config):
    """The {role: parameter name} mapping of a batch: the generic names overridden by provider_config["params"]."""
    params = (provider_config or {}).get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) and v for v in params.values()):
        raise ValidationError({
            "provider_config.params": "must be a {role: parameter name} object, e.g. "
            f"{PARAM_PRESETS['prolific']} (publish --params prolific stores that preset)"
        })
    merged = dict(params)
    for role, name in PARAM_PRESETS[DEFAULT_PRESET].items():
        merged.setdefault(role, name)
    return merged


def preset_of(params):
    """The preset a mapping matches, for its placeholder syntax."""
    for name, preset in PARAM_PRESETS.items():
        if preset == params:
            return name
    return DEFAULT_PRESET


def task_url_with_params(hit, params, values):
    """The HIT's task URL with the given role values (worker=..., assignment=...) under params' names ({role: name});
    roles not given become placeholders in the preset's syntax."""
    placeholder = PLACEHOLDER_FORMATS[preset_of(params)]
    query = {name: values.get(role, placeholder % name) for role, name in params.items()}
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/task/{hit.pk}/?{urlencode(query, safe='{}%')}"


class LinkProvider(CrowdProvider):
    name = Provider.LINK

    def entry_params(self, batch):
        return resolve_params(batch.provider_config)

    def task_url(self, hit, **values):
        return task_url_with_params(hit, self.entry_params(hit.batch), values)

    def publish(self, batch, hits):
        return {hit.pk: self.task_url(hit) for hit in hits}

    def sync(self, batch):
        # Workers arrive through our own task page, which creates their assignments: nothing to fetch.
        return SyncResult(hits=batch.hits.count())

    def approve(self, assignment, override_rejection=False):
        logger.info("assignment %s approved; the market learns it from the decisions CSV", assignment.uuid)

    def reject(self, assignment, feedback):
        logger.info("assignment %s rejected; the market learns it from the decisions CSV", assignment.uuid)

    def bonus(self, assignment, amount, reason, request_key):
        logger.info("bonus %s for assignment %s goes out in the decisions CSV", amount, assignment.uuid)

    def repost(self, hit, count, request_key):
        logger.info("HIT %s takes %d more assignments through its task URL", hit, count)

    def expire(self, hit):
        logger.info("HIT %s expired: its task URL no longer takes new workers", hit)

    def block(self, worker, blocked, reason):
        # Our own task pages refuse a blocked worker; a link market has no API to tell.
        logger.info("worker %s %s here only: a link market has no blocking API", worker,
                    "blocked" if blocked else "unblocked")

    def notify(self, batch, workers, subject, message, request_key):
        # A link market has no messaging API here: the message is kept in the NOTIFIED event for staff to send.
        logger.info("batch %s: message %r for %d workers kept for sending on the market", batch, subject, len(workers))
        return {}


def write_decisions_csv(batch, file):
    """One row per decided assignment of the batch, in the market's terms (its worker and assignment ids)."""
    bonus_cents = defaultdict(int)
    for event in Event.objects.filter(batch=batch, type=Event.Type.BONUSED).only("assignment_id", "data"):
        bonus_cents[event.assignment_id] += events.bonus_paid(event).amount_cents
    assignments = (
        Assignment.objects.filter(hit__batch=batch, state__in=Assignment.DECIDED_STATES)
        .select_related("hit", "worker")
        .order_by("hit__index", "pk")
    )
    writer = csv.DictWriter(file, fieldnames=DECISION_CSV_COLUMNS)
    writer.writeheader()
    rows = 0
    for assignment in assignments:
        writer.writerow({
            "worker_id": assignment.worker.external_id,
            "assignment_id": assignment.external_id or assignment.uuid,
            "hit": assignment.hit.index,
            "decision": "approve" if assignment.state == Assignment.State.APPROVED else "reject",
            "feedback": truncate_feedback(assignment.feedback),
            "bonus": f"{Decimal(bonus_cents[assignment.pk]) / 100:.2f}",
            "completion_code": assignment.completion_code,
            "submitted_at": assignment.submitted_at.isoformat() if assignment.submitted_at else "",
            "decided_at": assignment.reviewed_at.isoformat() if assignment.reviewed_at else "",
        })
        rows += 1
    return rows
