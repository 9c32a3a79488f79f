"""The `mturk` provider: Amazon Mechanical Turk through boto3 (PRODUCT.md section 6).

Mechanical Turk closed on 30 September 2026; this provider is kept correct against botocore's service model
and any MTurk-compatible endpoint (settings.MTURK_ENDPOINT_URL). Credentials come from the environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or an AWS profile), never from the repository.
Every call is appended to the event log as a MARKET_CALL event.
"""
import dataclasses
import logging
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import boto3
from botocore import xform_name
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from annotator import events
from annotator.models import Assignment, Hit, Provider
from annotator.rules import truncate_feedback

from .base import MarketProvider, SyncResult, entry_value, record_refusal, request_token

logger = logging.getLogger(__name__)

PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
REGION = "us-east-1"
EXTERNAL_QUESTION_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
)
APPROVAL_RATE_QUALIFICATION = "000000000000000000L0"
LOCALE_QUALIFICATION = "00000000000000000071"
NOTIFY_CHUNK = 100
ASSIGNMENTS_PAGE_SIZE = 100
SUBJECT_MAX_CHARS = 200
MESSAGE_MAX_CHARS = 4096
# The query parameters MTurk adds to an ExternalQuestion URL (and turkSubmitTo).
ENTRY_PARAMS = {"worker": "workerId", "assignment": "assignmentId", "hit": "hitId"}
# Any time in the past expires a HIT at once; a fixed one keeps the request reproducible.
EXPIRE_NOW = datetime(2015, 1, 1, tzinfo=UTC)
MARKET_STATES = {
    "Submitted": Assignment.State.SUBMITTED,
    "Approved": Assignment.State.APPROVED,
    "Rejected": Assignment.State.REJECTED,
}
DEFAULTS = {
    "title": "Label images",
    "description": "Look at images and mark what they show.",
    "keywords": "image, labeling, annotation",
    "lifetime": 7 * 24 * 3600,
    "auto_approval_delay": 3 * 24 * 3600,
    "frame_height": 0,
    "min_approval_rate": 90,
    "locale": "US",
}


def make_client():
    """The boto3 mturk client for the configured endpoint (sandbox unless MTURK_SANDBOX is false)."""
    endpoint = settings.MTURK_ENDPOINT_URL or (SANDBOX_ENDPOINT if settings.MTURK_SANDBOX else PRODUCTION_ENDPOINT)
    return boto3.client("mturk", region_name=REGION, endpoint_url=endpoint)


def hit_type_params(batch):
    config = {**DEFAULTS, **batch.provider_config}
    qualifications = []
    if config["min_approval_rate"] is not None:
        qualifications.append({
            "QualificationTypeId": APPROVAL_RATE_QUALIFICATION,
            "Comparator": "GreaterThanOrEqualTo",
            "IntegerValues": [int(config["min_approval_rate"])],
            "ActionsGuarded": "Accept",
        })
    if config["locale"]:
        qualifications.append({
            "QualificationTypeId": LOCALE_QUALIFICATION,
            "Comparator": "EqualTo",
            "LocaleValues": [{"Country": config["locale"]}],
            "ActionsGuarded": "Accept",
        })
    return {
        "AutoApprovalDelayInSeconds": int(config["auto_approval_delay"]),
        # The batch's setting, the same one after which our own assignments expire.
        "AssignmentDurationInSeconds": int(batch.assignment_duration.total_seconds()),
        "Reward": f"{batch.reward:.2f}",
        "Title": config["title"],
        "Keywords": config["keywords"],
        "Description": config["description"],
        "QualificationRequirements": qualifications,
    }


def external_question(url, frame_height):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NS}">'
        f"<ExternalURL>{escape(url)}</ExternalURL>"
        f"<FrameHeight>{int(frame_height)}</FrameHeight>"
        "</ExternalQuestion>"
    )


def _token_already_used(error):
    """MTurk refuses a UniqueRequestToken it has already served: the earlier call did the work."""
    message = error.response.get("Error", {}).get("Message", "")
    return "UniqueRequestToken" in message or "HitAlreadyExists" in message or "already exists" in message


class MTurkProvider(MarketProvider):
    name = Provider.MTURK
    market_hit_role = "hit"
    assignment_id_name = "Mechanical Turk assignment id: run sync_hits"

    def new_client(self):
        return make_client()

    def _call(self, operation, *, batch=None, hit=None, assignment=None, record=None, **params):
        """One market call, logged as a MARKET_CALL event (params without message bodies)."""
        response = getattr(self.client, xform_name(operation))(**params)
        summary = {k: v for k, v in params.items() if k not in ("Question", "MessageText", "RequesterFeedback")}
        events.market_call(provider=self.name, operation=operation, batch=batch, hit=hit, assignment=assignment,
                           params=_json_safe(summary), **(record or {})).save()
        return response

    def entry_params(self, batch):
        return ENTRY_PARAMS

    def parse_entry(self, batch, query):
        """MTurk's entry: the common one (a preview sends ASSIGNMENT_ID_NOT_AVAILABLE) and turkSubmitTo, kept only as a
        web origin (the page would POST the worker's code there)."""
        entry = super().parse_entry(batch, query)
        turk_submit_to = entry_value(query, "turkSubmitTo", Assignment.turk_submit_to)
        parsed = urlsplit(turk_submit_to)
        return dataclasses.replace(
            entry, turk_submit_to=turk_submit_to if parsed.scheme in ("https", "http") and parsed.netloc else "",
        )

    def task_url(self, hit, **values):
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        if not base.startswith("https://"):
            raise ImproperlyConfigured(f"PUBLIC_BASE_URL must be https:// for Mechanical Turk, not {base!r}")
        return f"{base}/task/{hit.pk}/"

    def publish(self, batch, hits):
        config = {**DEFAULTS, **batch.provider_config}
        self.task_url(Hit(pk=0, batch=batch))  # refuse a plain-http PUBLIC_BASE_URL before any market call
        hit_type = self._call("CreateHITType", batch=batch, **hit_type_params(batch))["HITTypeId"]
        published = {}
        for hit in hits:
            question = external_question(self.task_url(hit), config["frame_height"])
            try:
                answer = self._call(
                    "CreateHITWithHITType", hit=hit,
                    HITTypeId=hit_type, MaxAssignments=hit.max_assignments,
                    LifetimeInSeconds=int(config["lifetime"]), Question=question,
                    RequesterAnnotation=f"{batch.name}#{hit.index}"[:255],
                    UniqueRequestToken=request_token(f"publish:{hit.pk}"),
                )["HIT"]
            except ClientError as error:
                published_id = _hit_id_in(error)
                if not published_id:
                    raise
                logger.info("HIT %s was already created on the market as %s", hit, published_id)
                hit.external_id = published_id
            else:
                hit.external_id = answer["HITId"]
                hit.expires_at = answer.get("Expiration")
            hit.save(update_fields=["external_id", "expires_at"])
            published[hit.pk] = hit.external_id
        return published

    def sync(self, batch):
        result = SyncResult()
        for hit in batch.hits.exclude(external_id="").order_by("index"):
            result.hits += 1
            params = {"HITId": hit.external_id, "MaxResults": ASSIGNMENTS_PAGE_SIZE}
            while True:
                page = self._call("ListAssignmentsForHIT", hit=hit, **params)
                for market_assignment in page.get("Assignments", []):
                    created, updated = self._mirror(hit, market_assignment)
                    result.created += created
                    result.updated += updated
                if not page.get("NextToken"):
                    break
                params["NextToken"] = page["NextToken"]
        return result

    def _mirror(self, hit, market):
        """One market assignment into our rows (services.mirror_market_assignment); returns (created, updated)."""
        from .services import MarketAssignment, mirror_market_assignment

        return mirror_market_assignment(hit, MarketAssignment(
            worker_id=market["WorkerId"], assignment_id=market["AssignmentId"], status=market["AssignmentStatus"],
            state=MARKET_STATES.get(market["AssignmentStatus"]), submitted_at=market.get("SubmitTime"),
            decided_at=market.get("ApprovalTime") or market.get("RejectionTime"),
            feedback=market.get("RequesterFeedback"),
            claimed_completion_code=claimed_completion_code(market),
        ), provider=Provider.MTURK)

    def approve(self, assignment, override_rejection=False):
        params = {"AssignmentId": self._market_id(assignment)}
        feedback = truncate_feedback(assignment.feedback)
        if feedback:
            params["RequesterFeedback"] = feedback
        if override_rejection:
            params["OverrideRejection"] = True
        self._decide("ApproveAssignment", assignment, Assignment.State.APPROVED, params)

    def reject(self, assignment, feedback):
        feedback = truncate_feedback(feedback)
        if not feedback:
            raise ValidationError({"feedback": f"assignment {assignment.uuid}: a rejection needs feedback"})
        self._decide("RejectAssignment", assignment, Assignment.State.REJECTED,
                     {"AssignmentId": self._market_id(assignment), "RequesterFeedback": feedback})

    def _decide(self, operation, assignment, decision, params):
        """A decision call; one the market refuses (RequestError) is recorded for staff and swept again later."""
        try:
            self._call(operation, assignment=assignment, record={"market_decision": decision}, **params)
        except ClientError as error:
            details = error.response.get("Error", {})
            if details.get("Code") != "RequestError":
                raise  # throttled or the service failed: the task retries
            record_refusal(self.name, operation, details.get("Message", str(error)), assignment=assignment)

    def bonus(self, assignment, amount, reason, request_key):
        try:
            self._call(
                "SendBonus", assignment=assignment, record={"key": request_key},
                WorkerId=assignment.worker.external_id, BonusAmount=f"{amount:.2f}",
                AssignmentId=self._market_id(assignment), Reason=reason,
                UniqueRequestToken=request_token(request_key),
            )
        except ClientError as error:
            if not _token_already_used(error):
                raise
            logger.info("bonus %s was already paid by an earlier attempt", request_key)

    def repost(self, hit, count, request_key):
        if not hit.external_id:
            raise ValidationError({"hit": f"HIT {hit} is not published on Mechanical Turk"})
        try:
            self._call(
                "CreateAdditionalAssignmentsForHIT", hit=hit, record={"key": request_key},
                HITId=hit.external_id, NumberOfAdditionalAssignments=count,
                UniqueRequestToken=request_token(request_key),
            )
        except ClientError as error:
            if not _token_already_used(error):
                raise
            logger.info("re-post %s was already made by an earlier attempt", request_key)

    def expire(self, hit):
        if not hit.external_id:
            raise ValidationError({"hit": f"HIT {hit} is not published on Mechanical Turk"})
        self._call("UpdateExpirationForHIT", hit=hit, HITId=hit.external_id, ExpireAt=EXPIRE_NOW)

    def notify(self, batch, workers, subject, message, request_key):
        if len(subject) > SUBJECT_MAX_CHARS:
            raise ValidationError({"subject": f"{len(subject)} characters; Mechanical Turk allows {SUBJECT_MAX_CHARS}"})
        if len(message) > MESSAGE_MAX_CHARS:
            raise ValidationError({"message": f"{len(message)} characters; Mechanical Turk allows {MESSAGE_MAX_CHARS}"})
        worker_ids = sorted(w.external_id for w in workers)
        done = events.market_call_keys(batch=batch, operation="NotifyWorkers", key_prefix=f"{request_key}:")
        failures = {}
        for start in range(0, len(worker_ids), NOTIFY_CHUNK):
            chunk_key = f"{request_key}:{start // NOTIFY_CHUNK}"
            if chunk_key in done:
                continue
            answer = self._call("NotifyWorkers", batch=batch, record={"key": chunk_key},
                                Subject=subject, MessageText=message, WorkerIds=worker_ids[start:start + NOTIFY_CHUNK])
            for failure in answer.get("NotifyWorkersFailureStatuses", []):
                failures[failure["WorkerId"]] = failure.get("NotifyWorkersFailureMessage", "")
        return failures

    def block(self, worker, blocked, reason):
        operation = "CreateWorkerBlock" if blocked else "DeleteWorkerBlock"
        params = {"WorkerId": worker.external_id, "Reason": reason or "unblocked by the requester"}
        response = getattr(self.client, xform_name(operation))(**params)
        events.market_call(provider=self.name, operation=operation, worker=worker,
                           params={"WorkerId": worker.external_id}, blocked=blocked).save()
        return response


def claimed_completion_code(market_assignment):
    """The completion code the task page posted to externalSubmit, read from the assignment's Answer XML."""
    answer = market_assignment.get("Answer")
    if not answer:
        return ""
    try:
        root = ElementTree.fromstring(answer)
    except ElementTree.ParseError:
        return ""
    for element in root.iter():
        if element.tag.endswith("Answer"):
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in element}
            if fields.get("QuestionIdentifier") == "completion_code":
                return fields.get("FreeText", "")
    return ""


def _hit_id_in(error):
    message = error.response.get("Error", {}).get("Message", "")
    if "HitAlreadyExists" not in message and "already exists" not in message:
        return ""
    match = re.search(r"\b[A-Z0-9]{20,64}\b", message)
    return match.group(0) if match else ""


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
