"""The provider interface every crowd market implements, and the choice of provider for a batch.

A provider only talks to its market and maps the market's answers onto our rows (HIT ids, synced
assignments). Idempotency, the audit trail and state changes live in annotator.providers.services,
which is what the Celery tasks and commands call.
"""
import abc
import hashlib
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from annotator import events
from annotator.models import Assignment, Hit, Provider, Worker

logger = logging.getLogger(__name__)

class BadEntry(ValueError):
    """A task URL parameter that is not an id we can take (a NUL character, too long); the message names it."""


# MTurk's assignmentId in a preview (and in a link batch's URL opened the same way): the page records nothing.
PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"


@dataclass(frozen=True)
class Entry:
    """Who opens a task URL, as its market's query parameters say."""

    worker_id: str  # "" for a preview
    assignment_id: str  # the market's assignment id (MTurk assignmentId, Prolific SESSION_ID), "" when it sends none
    # The parameter that carries the market's id of the HIT (MTurk hitId, Prolific STUDY_ID) and its value: the entry
    # page refuses a link for another HIT. None where the market sends none.
    market_hit_param: str | None = None
    market_hit_id: str = ""
    turk_submit_to: str = ""  # MTurk: the origin the page posts the completion code to


def entry_value(query, name, field):
    """One task URL parameter, stripped; BadEntry when the model field it is stored in cannot hold it."""
    max_chars = field.field.max_length
    value = query.get(name, "").strip()
    if "\x00" in value:
        raise BadEntry(f"{name} contains a character that is not allowed")
    if len(value) > max_chars:
        raise BadEntry(f"{name} is {len(value)} characters long; at most {max_chars} are allowed")
    return value

@dataclass
class SyncResult:
    hits: int = 0
    created: int = 0
    updated: int = 0
    decisions_sent: int = 0


def request_token(key):
    """A market's idempotency token from one of our own keys: the same key always gives the same token."""
    return hashlib.sha256(key.encode()).hexdigest()[:64]


def record_refusal(provider, operation, reason, **owners_and_details):
    """A call the market understood and refused (MTurk's RequestError, Prolific's 4xx): a MARKET_CALL event with the
    market's reason, which the review console shows; a refused decision has no market_decision, so the sweeper
    sends it again."""
    logger.warning("%s refused %s: %s", provider, operation, reason)
    events.market_call(provider=provider, operation=operation, refused=reason, **owners_and_details).save()


class CrowdProvider(abc.ABC):
    """What every crowd market offers. Methods call the market (or record locally) and return its answer."""

    name = ""
    # The role (in entry_params) whose parameter carries the market's id of the HIT, where the market sends one.
    market_hit_role = None

    @abc.abstractmethod
    def publish(self, batch, hits):
        """Put the given HITs of the batch on the market; returns {hit.pk: the URL or market HIT id}."""

    @abc.abstractmethod
    def sync(self, batch):
        """Bring the market's assignments of the batch into our rows; returns a SyncResult."""

    @abc.abstractmethod
    def approve(self, assignment, override_rejection=False):
        """Approve (pay) a submitted assignment."""

    @abc.abstractmethod
    def reject(self, assignment, feedback):
        """Reject an assignment with feedback the worker sees."""

    @abc.abstractmethod
    def bonus(self, assignment, amount, reason, request_key):
        """Pay a bonus once per request_key, however often this is retried."""

    @abc.abstractmethod
    def repost(self, hit, count, request_key):
        """Open `count` more assignments of the HIT once per request_key."""

    @abc.abstractmethod
    def expire(self, hit):
        """Stop the HIT from taking new workers."""

    @abc.abstractmethod
    def notify(self, batch, workers, subject, message, request_key):
        """Message workers; returns {worker external id: failure message} for those the market could not reach."""

    @abc.abstractmethod
    def block(self, worker, blocked, reason):
        """Keep the worker from (blocked) or let them back to (not blocked) the requester's work on the market."""

    @abc.abstractmethod
    def task_url(self, hit, **values):
        """The URL a worker opens for this HIT."""

    @abc.abstractmethod
    def entry_params(self, batch):
        """{role: query parameter name} of the batch's task URLs: "worker", "assignment" and the market's others."""

    def parse_entry(self, batch, query):
        """The Entry a task URL's query parameters describe; BadEntry when one of them is not an id we can take."""
        names = self.entry_params(batch)
        hit_param = names[self.market_hit_role] if self.market_hit_role else None
        assignment_id = entry_value(query, names["assignment"], Assignment.external_id)
        return Entry(
            worker_id="" if assignment_id == PREVIEW_ASSIGNMENT else entry_value(query, names["worker"],
                                                                                 Worker.external_id),
            assignment_id=assignment_id,
            market_hit_param=hit_param,
            market_hit_id=entry_value(query, hit_param, Hit.external_id) if hit_param else "",
        )


class MarketProvider(CrowdProvider):
    """A provider that calls its market's API, through a client made on first use (tests hand in their own)."""

    # The market's id of an assignment, named for the error when an assignment has none (and what to do about it).
    assignment_id_name = ""

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = self.new_client()
        return self._client

    @abc.abstractmethod
    def new_client(self):
        """A client of the market's API, configured from the settings."""

    def _market_id(self, assignment):
        if not assignment.external_id:
            raise ValidationError({"assignment": f"assignment {assignment.uuid} has no {self.assignment_id_name}"})
        return assignment.external_id


def get_provider(batch):
    """The provider object for the batch's market."""
    return provider_named(batch.provider, f"batch {batch.name}")


def provider_named(name, owner):
    """The provider object for a market name (a batch's or a worker's provider)."""
    from .link import LinkProvider
    from .mturk import MTurkProvider
    from .prolific import ProlificProvider

    providers = {Provider.LINK: LinkProvider, Provider.MTURK: MTurkProvider, Provider.PROLIFIC: ProlificProvider}
    try:
        return providers[name]()
    except KeyError:
        raise ValidationError({"provider": f"{owner}: unknown provider {name!r}"}) from None
