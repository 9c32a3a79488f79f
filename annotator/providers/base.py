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
from annotator.models import Provider

logger = logging.getLogger(__name__)

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
