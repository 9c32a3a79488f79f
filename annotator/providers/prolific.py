"""The `prolific` provider: Prolific through its REST API (https://docs.prolific.com/api-reference).

Mapping: one Prolific study per HIT. The study's `total_available_places` are the HIT's places (max_assignments); its
external_study_url is our task URL carrying `PROLIFIC_PID`, `STUDY_ID` and `SESSION_ID` (the submission id, which
becomes the assignment's external_id); its one completion code (derived from the HIT's secret) sends the participant
back to Prolific, which then marks the submission AWAITING REVIEW. One study per HIT keeps each HIT's places, pay and
re-posts on the market exactly as they are here; Prolific rate-limits publishing many small studies, so a batch of
thousands of HITs would want Taskflow (one study, many URLs) instead, which this provider does not use.

Reward and time: `reward` is the batch's reward in cents (the workspace's currency), `estimated_completion_time`
provider_config["estimated_minutes"], or by default the longest whole number of minutes at which the reward still pays
the batch's min_hourly_wage; a stated estimate that pays less is refused before any market call.

Decisions go through POST /api/v1/submissions/{id}/transition/ (idempotent on Prolific's side), bonuses through
set-up-then-pay bulk bonus payments, messages through /api/v1/messages/bulk/, re-posts by raising the study's places
with PATCH /api/v1/studies/{id}/. Every call is appended to the event log as a MARKET_CALL event; a decision Prolific
refuses (4xx) is recorded there with the market's reason (`refused`), shown in the review console and sent again by
the sweeper. 429 is retried here after Retry-After; 429 beyond that, 5xx and network errors raise ProlificUnavailable,
which the Celery tasks retry with backoff; 401 raises ProlificAuthError (a wrong or missing token).
"""
import base64
import hashlib
import hmac
import logging
import time
from decimal import ROUND_FLOOR, Decimal

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotator import events
from annotator.models import Assignment, Provider
from annotator.rules import truncate_feedback

from .base import MarketProvider, SyncResult, record_refusal, request_token
from .link import PARAM_PRESETS, task_url_with_params

logger = logging.getLogger(__name__)

COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"
PARAMS = PARAM_PRESETS["prolific"]
REQUEST_TIMEOUT_S = 30
MAX_RATE_LIMIT_WAITS = 3
MAX_RETRY_AFTER_S = 30
# Prolific refuses a rejection message shorter than this.
REJECTION_MESSAGE_MIN_CHARS = 100
REJECTION_MESSAGE_TAIL = (
    " This decision was made by the study's automatic quality review; reply to this message if you think it is wrong."
)
REJECTION_CATEGORIES = (
    "TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK", "LOW_EFFORT",
    "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER",
)
# Submission statuses (https://docs.prolific.com/api-reference/submissions/submission-object); RESERVED and ACTIVE
# mean the participant is still at it.
SUBMITTED_STATUSES = {"AWAITING REVIEW"}
DECIDED_STATUSES = {"APPROVED": Assignment.State.APPROVED, "REJECTED": Assignment.State.REJECTED}
# Statuses that give the place back on Prolific: what our assignment becomes when it was still open.
RELEASED_STATUSES = {"RETURNED": Assignment.State.RETURNED, "TIMED-OUT": Assignment.State.EXPIRED}
DEFAULTS = {
    "title": "Label images",
    "description": "Look at images and mark what they show.",
    "estimated_minutes": None,
    "rejection_category": "LOW_EFFORT",
    "device_compatibility": ["desktop"],
}


class ProlificError(Exception):
    """An answer from Prolific other than success: status (0 for no answer at all) and the market's detail."""

    def __init__(self, status, detail, operation=""):
        super().__init__(f"Prolific {operation}: " + (f"HTTP {status}: {detail}" if status else str(detail)))
        self.status = status
        self.detail = detail
        self.operation = operation


class ProlificUnavailable(ProlificError):
    """5xx, 429 after waiting, or no answer: try again later (the Celery tasks retry with backoff)."""


class ProlificAuthError(ProlificError):
    """401: PROLIFIC_API_TOKEN is missing or wrong; nothing is retried until it is fixed."""


class ProlificRefused(ProlificError):
    """4xx: Prolific understood the request and said no (a rejection over its limits, a study not in that state)."""


class ProlificClient:
    """The HTTP calls, with `Authorization: Token <key>`; answers are JSON (or nothing)."""

    def __init__(self, token=None, base_url=None, session=None):
        self.token = settings.PROLIFIC_API_TOKEN if token is None else token
        self.base_url = (base_url or settings.PROLIFIC_API_URL).rstrip("/")
        self.session = session or requests.Session()

    def request(self, method, path, operation, body=None, params=None):
        """(answer body, answer headers); waits out a 429 up to MAX_RATE_LIMIT_WAITS times."""
        if not self.token:
            raise ProlificAuthError(401, "PROLIFIC_API_TOKEN is not set", operation)
        for attempt in range(MAX_RATE_LIMIT_WAITS + 1):
            try:
                response = self.session.request(
                    method, f"{self.base_url}{path}", json=body, params=params, timeout=REQUEST_TIMEOUT_S,
                    headers={"Authorization": f"Token {self.token}", "Accept": "application/json"},
                )
            except requests.RequestException as error:
                raise ProlificUnavailable(0, f"no answer from {self.base_url}: {error}", operation) from error
            if response.status_code != 429 or attempt == MAX_RATE_LIMIT_WAITS:
                break
            wait = _retry_after(response)
            logger.warning("Prolific %s: rate limited (429), waiting %.1f s", operation, wait)
            time.sleep(wait)
        if response.status_code < 400:
            return (response.json() if response.content else {}), response.headers
        detail = _error_detail(response)
        if response.status_code == 401:
            raise ProlificAuthError(401, detail, operation)
        if response.status_code == 429 or response.status_code >= 500:
            raise ProlificUnavailable(response.status_code, detail, operation)
        raise ProlificRefused(response.status_code, detail, operation)


def _retry_after(response):
    try:
        return min(float(response.headers.get("Retry-After", "1")), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def _error_detail(response):
    """Prolific's errors read {"error": {"detail": ..., ...}}; anything else is shown as it came."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    error = body.get("error", body) if isinstance(body, dict) else body
    detail = error.get("detail", error) if isinstance(error, dict) else error
    return str(detail)[:1000]


def study_completion_code(hit):
    """The HIT's study's completion code: derived from the HIT's secret, so only participants who finished know it."""
    return request_token(f"prolific-completion:{hit.pk}:{hit.candidate_key}")[:10].upper()


def completion_url(hit):
    return COMPLETION_URL.format(code=study_completion_code(hit))


def reward_cents(batch):
    cents = (batch.reward * 100).quantize(Decimal("1"))
    if cents < 1:
        raise ValidationError({"reward": f"{batch.reward}: a Prolific study pays at least 0.01"})
    return int(cents)


def estimated_minutes(batch):
    """The study's estimated completion time: the batch's estimate, or the longest that pays min_hourly_wage."""
    config = {**DEFAULTS, **batch.provider_config}
    wage = batch.min_hourly_wage
    stated = config["estimated_minutes"]
    if stated is None:
        minutes = int((batch.reward * 60 / wage).to_integral_value(ROUND_FLOOR)) if wage > 0 else 60
        if minutes < 1:
            raise ValidationError({"reward": (
                f"{batch.reward} per HIT cannot pay the batch's minimum hourly rate {wage} for even one minute"
            )})
        return minutes
    if isinstance(stated, bool) or not isinstance(stated, int) or stated < 1:
        raise ValidationError({"provider_config.estimated_minutes": f"{stated!r} is not a whole number of minutes"})
    hourly = (batch.reward * 60 / stated).quantize(Decimal("0.01"))
    if hourly < wage:
        raise ValidationError({"provider_config.estimated_minutes": (
            f"{stated} minutes for {batch.reward} pays {hourly} an hour, under the batch's minimum hourly rate {wage}"
        )})
    return stated


def rejection_message(feedback):
    """Our feedback as Prolific's rejection message, which must be at least REJECTION_MESSAGE_MIN_CHARS long."""
    message = truncate_feedback(feedback)
    if len(message) < REJECTION_MESSAGE_MIN_CHARS:
        message = (message + REJECTION_MESSAGE_TAIL).strip()
    return message


class ProlificProvider(MarketProvider):
    name = Provider.PROLIFIC
    market_hit_role = "study"
    assignment_id_name = "Prolific submission id (SESSION_ID)"

    def new_client(self):
        return ProlificClient()

    def _call(self, method, path, operation, *, body=None, params=None, batch=None, hit=None, assignment=None,
              worker=None, record=None, record_answer=None):
        """One market call, logged as a MARKET_CALL event (without message bodies), with `record` and what
        record_answer(answer) picks from the answer. A refusal is logged too, with the market's reason, and raised."""
        summary = {k: v for k, v in (body or {}).items() if k not in ("message", "body", "csv_bonuses")}
        try:
            answer, headers = self.client.request(method, path, operation, body=body, params=params)
        except ProlificRefused as error:
            record_refusal(self.name, operation, error.detail, batch=batch, hit=hit, assignment=assignment,
                           worker=worker, path=path, params=summary, status=error.status)
            raise
        if method != "GET":
            picked = record_answer(answer) if record_answer else {}
            events.market_call(provider=self.name, operation=operation, batch=batch, hit=hit, assignment=assignment,
                               worker=worker, path=path, params=summary, **(record or {}), **picked).save()
        return answer, headers

    def entry_params(self, batch):
        return PARAMS

    def task_url(self, hit, **values):
        """Our task URL with Prolific's placeholders ({{%PROLIFIC_PID%}}...), or the given role values."""
        return task_url_with_params(hit, PARAMS, values)

    def study_body(self, hit):
        batch = hit.batch
        config = {**DEFAULTS, **batch.provider_config}
        return {
            "name": config["title"],
            "internal_name": f"{batch.name}#{hit.index}",
            "description": config["description"],
            "external_study_url": self.task_url(hit),
            "prolific_id_option": "url_parameters",
            "completion_codes": [{
                "code": study_completion_code(hit), "code_type": "COMPLETED",
                "actions": [{"action": "MANUALLY_REVIEW"}],
            }],
            "total_available_places": hit.max_assignments,
            "estimated_completion_time": estimated_minutes(batch),
            "maximum_allowed_time": max(int(batch.assignment_duration.total_seconds() // 60), estimated_minutes(batch)),
            "reward": reward_cents(batch),
            "device_compatibility": list(config["device_compatibility"]),
            **({"filters": [{"filter_id": "participant_group_blocklist",
                             "selected_values": [settings.PROLIFIC_BLOCKLIST_GROUP_ID]}]}
               if settings.PROLIFIC_BLOCKLIST_GROUP_ID else {}),
        }

    def publish(self, batch, hits):
        if not settings.PUBLIC_BASE_URL.startswith("https://") and not settings.DEBUG:
            raise ImproperlyConfigured(
                f"PUBLIC_BASE_URL must be https:// for Prolific, not {settings.PUBLIC_BASE_URL!r}")
        estimated_minutes(batch)  # refuse a rate under the minimum before any market call
        reward_cents(batch)
        published = {}
        for hit in hits:
            key = f"publish:{hit.pk}"
            created = events.earlier_market_call(key=key, hit=hit)
            if created:
                study_id = created.study_id  # an earlier attempt created it and stopped before publishing
                study, _ = self._call("GET", f"/api/v1/studies/{study_id}/", "get-study", hit=hit)
                status = study.get("status")
            else:
                study, _ = self._call("POST", "/api/v1/studies/", "create-study", body=self.study_body(hit), hit=hit,
                                      record={"key": key}, record_answer=lambda study: {"study_id": study["id"]})
                study_id, status = study["id"], study.get("status", "UNPUBLISHED")
            if status == "UNPUBLISHED":
                self._call("POST", f"/api/v1/studies/{study_id}/transition/", "publish-study",
                           body={"action": "PUBLISH"}, hit=hit)
            hit.external_id = study_id
            hit.save(update_fields=["external_id"])
            published[hit.pk] = study_id
        return published

    def sync(self, batch):
        result = SyncResult()
        for hit in batch.hits.exclude(external_id="").order_by("index"):
            result.hits += 1
            path, params = "/api/v1/submissions/", {"study": hit.external_id}
            while path:
                page, _ = self._call("GET", path, "list-submissions", params=params, hit=hit)
                for submission in page.get("results", []):
                    created, updated = mirror_submission(hit, submission, source="sync")
                    result.created += created
                    result.updated += updated
                next_url = (page.get("_links", {}).get("next") or {}).get("href")
                path, params = (next_url.removeprefix(self.client.base_url), None) if next_url else (None, None)
        return result

    def approve(self, assignment, override_rejection=False):
        # Prolific cannot turn a rejection into an approval; such a change stays here and is refused there.
        self._transition(assignment, {"action": "APPROVE"}, Assignment.State.APPROVED)

    def reject(self, assignment, feedback):
        category = {**DEFAULTS, **assignment.hit.batch.provider_config}["rejection_category"]
        if category not in REJECTION_CATEGORIES:
            raise ValidationError({"provider_config.rejection_category": (
                f"{category!r} is not one of Prolific's rejection categories: {', '.join(REJECTION_CATEGORIES)}"
            )})
        self._transition(assignment, {"action": "REJECT", "message": rejection_message(feedback),
                                      "rejection_category": category}, Assignment.State.REJECTED)

    def _transition(self, assignment, body, decision):
        try:
            self._call("POST", f"/api/v1/submissions/{self._market_id(assignment)}/transition/",
                       f"{body['action'].lower()}-submission", body=body, assignment=assignment,
                       record={"market_decision": decision})
        except ProlificRefused:
            pass  # recorded by _call (the console shows it); the sweeper sends the decision again later

    def bonus(self, assignment, amount, reason, request_key):
        # Paying is not idempotent on Prolific: a bulk payment is set up once per key and paid once.
        setup = events.earlier_market_call(key=request_key, operation="set-up-bonus", assignment=assignment)
        if setup:
            payment_id = setup.payment_id
        else:
            payment, _ = self._call("POST", "/api/v1/submissions/bonus-payments/", "set-up-bonus", body={
                "study_id": assignment.hit.external_id,
                "csv_bonuses": f"{assignment.worker.external_id},{amount:.2f}\n",
            }, assignment=assignment, record={"key": request_key},
                record_answer=lambda payment: {"payment_id": payment["id"]})
            payment_id = payment["id"]
        self._call("POST", f"/api/v1/bulk-bonus-payments/{payment_id}/pay/", "pay-bonus", assignment=assignment,
                   record={"key": request_key, "payment_id": payment_id, "reason": reason})

    def repost(self, hit, count, request_key):
        """Raise the study's places so that the HIT's target is reachable. Prolific itself gives back the place of
        a rejected, returned or timed-out submission, so the target counts only the places still held there."""
        study_id = self._study_id(hit)
        released = hit.assignments.filter(state__in=(Assignment.State.REJECTED, *Assignment.RELEASED_STATES)).count()
        target = hit.max_assignments + count - released
        study, _ = self._call("GET", f"/api/v1/studies/{study_id}/", "get-study", hit=hit)
        if study.get("total_available_places", 0) >= target:
            logger.info("HIT %s: study %s already has %s places (target %s)", hit, study_id,
                        study.get("total_available_places"), target)
            return
        self._call("PATCH", f"/api/v1/studies/{study_id}/", "increase-places",
                   body={"total_available_places": target}, hit=hit, record={"key": request_key})

    def expire(self, hit):
        self._call("POST", f"/api/v1/studies/{self._study_id(hit)}/transition/", "pause-study",
                   body={"action": "PAUSE"}, hit=hit)

    def notify(self, batch, workers, subject, message, request_key):
        """One bulk message per study the workers took part in (Prolific ties every message to a study)."""
        by_study = {}
        for assignment in (Assignment.objects.filter(hit__batch=batch, worker__in=workers).exclude(hit__external_id="")
                           .select_related("worker", "hit").order_by("pk")):
            by_study.setdefault(assignment.hit.external_id, set()).add(assignment.worker.external_id)
        reached = set().union(*by_study.values()) if by_study else set()
        failures = {w.external_id: "took part in no study of this batch" for w in workers
                    if w.external_id not in reached}
        done = events.market_call_keys(batch=batch, operation="message-participants", key_prefix=f"{request_key}:")
        for study_id, participant_ids in sorted(by_study.items()):
            chunk_key = f"{request_key}:{study_id}"
            if chunk_key in done:
                continue
            try:
                self._call("POST", "/api/v1/messages/bulk/", "message-participants", body={
                    "ids": sorted(participant_ids), "body": f"{subject}\n\n{message}", "study_id": study_id,
                }, batch=batch, record={"key": chunk_key})
            except ProlificRefused as error:
                failures.update(dict.fromkeys(participant_ids, error.detail))
        return failures

    def block(self, worker, blocked, reason):
        """In or out of the PROLIFIC_BLOCKLIST_GROUP_ID participant group, which every study excludes."""
        group = settings.PROLIFIC_BLOCKLIST_GROUP_ID
        if not group:
            logger.warning("worker %s %s here only: PROLIFIC_BLOCKLIST_GROUP_ID is not set", worker,
                           "blocked" if blocked else "unblocked")
            return
        self._call("POST" if blocked else "DELETE", f"/api/v1/participant-groups/{group}/participants/",
                   "block-participant" if blocked else "unblock-participant",
                   body={"participant_ids": [worker.external_id]}, worker=worker, record={"blocked": blocked})

    @staticmethod
    def _study_id(hit):
        if not hit.external_id:
            raise ValidationError({"hit": f"HIT {hit} is not published on Prolific"})
        return hit.external_id


def mirror_submission(hit, submission, *, source, sent_at=None):
    """One Prolific submission ({id, participant_id, status}) into our rows (services.mirror_market_assignment)."""
    from .services import MarketAssignment, mirror_market_assignment

    status = submission["status"]
    state = (RELEASED_STATUSES.get(status) or DECIDED_STATUSES.get(status)
             or (Assignment.State.SUBMITTED if status in SUBMITTED_STATUSES else None))
    completed_at = parse_datetime(submission.get("completed_at") or "")
    return mirror_market_assignment(hit, MarketAssignment(
        worker_id=submission["participant_id"], assignment_id=submission["id"], status=status, state=state,
        submitted_at=completed_at or sent_at or timezone.now(), decided_at=sent_at or timezone.now(),
    ), provider=Provider.PROLIFIC, source=source)


def signature(secret, timestamp, body):
    """Prolific's webhook signature: base64 of the HMAC-SHA256 of the timestamp header followed by the raw body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()



def receive_notification(event_id, sent_at, signature, payload):
    """Apply one verified submission.status.change call; returns (applied, why not). A second call with the same
    X-Event-ID changes nothing; a status older (by its signed timestamp) than one already applied to the same
    submission is kept but not applied; a submission we do not know yet is left to the periodic sync."""
    from annotator.models import MarketNotification

    submission_id = payload["resource_id"]
    with transaction.atomic():
        notification, created = MarketNotification.objects.get_or_create(
            provider=Provider.PROLIFIC, event_id=event_id,
            defaults={"resource_id": submission_id, "status": payload["status"], "sent_at": sent_at,
                      "signature": signature, "payload": payload},
        )
        if not created:
            return False, f"event {event_id} was already received"
        newer = (MarketNotification.objects.filter(provider=Provider.PROLIFIC, resource_id=submission_id, applied=True,
                                                   sent_at__gt=sent_at).order_by("-sent_at").first())
        if newer:
            return False, f"status {newer.status} of {newer.sent_at.isoformat()} is newer"
        assignment = (Assignment.objects.select_related("hit__batch")
                      .filter(hit__batch__provider=Provider.PROLIFIC, external_id=submission_id).first())
        if assignment is None:
            return False, f"no assignment has submission {submission_id} yet: the periodic sync will bring it"
        mirror_submission(assignment.hit, {"id": submission_id, "participant_id": payload["participant_id"],
                                           "status": payload["status"]}, source="webhook", sent_at=sent_at)
        notification.applied = True
        notification.save(update_fields=["applied"])
        if payload["status"] in SUBMITTED_STATUSES:
            # Our review may have decided before the participant was back on Prolific (then refused as too early):
            # now that Prolific awaits review, the decision goes at once rather than at the next sweep.
            from config.celery import send_on_commit

            from . import tasks

            send_on_commit(tasks.send_decision, assignment.pk)
    return True, ""


def subscribe_webhook(workspace_id, target_url, client=None):
    """Set up Prolific's submission.status.change webhook as its documentation says: create the workspace's secret,
    subscribe target_url, confirm the subscription with the X-Hook-Secret it answered. Returns (subscription id,
    the signing secret to set as PROLIFIC_WEBHOOK_SECRET)."""
    client = client or ProlificClient()
    secret, _ = client.request("POST", "/api/v1/hooks/secrets/", "create-secret", body={"workspace_id": workspace_id})
    subscription, headers = client.request("POST", "/api/v1/hooks/subscriptions/", "create-subscription", body={
        "workspace_id": workspace_id, "event_type": "submission.status.change", "target_url": target_url,
    })
    confirm = headers.get("X-Hook-Secret")
    if not confirm:
        raise ProlificError(0, "the subscription answer has no X-Hook-Secret header to confirm it with",
                            "create-subscription")
    client.request("POST", f"/api/v1/hooks/subscriptions/{subscription['id']}/", "confirm-subscription",
                   body={"secret": confirm})
    logger.info("Prolific webhook %s confirmed for %s", subscription["id"], target_url)
    return subscription["id"], secret["value"]
