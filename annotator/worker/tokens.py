"""Assignment-scoped worker tokens, entry tickets and completion codes.

A token names exactly one assignment (by its uuid) and is signed with SECRET_KEY, so the worker API needs no
cookie and no assignment id in the URL: there is nothing a worker could change to reach someone else's work.
The task page keeps its token in the browser (under resume_key()); opening the task URL again for work already
started gives no token, only an entry ticket, which the browser that kept the token exchanges for a fresh one.
"""
import hashlib
import hmac
import uuid

from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac

TOKEN_SALT = "worker-token"
ENTRY_TICKET_SALT = "worker-entry"
# The page exchanges its entry ticket as soon as it has loaded.
ENTRY_TICKET_MAX_AGE_S = 600


class InvalidToken(Exception):
    """The token is missing, forged or expired; the message says which."""


def make_token(assignment):
    return signing.dumps(str(assignment.uuid), salt=TOKEN_SALT, compress=False)


def assignment_uuid_from_token(token):
    """The assignment uuid a token was issued for, or InvalidToken."""
    if not token:
        raise InvalidToken("no worker token was sent")
    try:
        value = signing.loads(token, salt=TOKEN_SALT, max_age=settings.WORKER_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise InvalidToken("the worker token has expired: reload the task page") from None
    except signing.BadSignature:
        raise InvalidToken("the worker token is not valid") from None
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise InvalidToken("the worker token is not valid") from None


def resume_key(hit_pk, provider, worker_external_id):
    """Where the task page keeps the token of one worker's work on one HIT (a localStorage key): the same on every
    entry of that worker to that HIT, and it tells nobody the worker id."""
    return salted_hmac("worker-resume", f"{hit_pk}:{provider}:{worker_external_id}").hexdigest()[:24]


def make_entry_ticket(hit_pk, provider, worker_external_id, market_assignment_id, turk_submit_to):
    """What an entry that may not resume by itself hands the page: the entry's parameters, signed. Worth nothing
    without the assignment's token; with it, POST resume continues the work under this entry's market ids."""
    entry = {"hit": hit_pk, "provider": provider, "worker": worker_external_id,
             "market_assignment_id": market_assignment_id, "turk_submit_to": turk_submit_to}
    return signing.dumps(entry, salt=ENTRY_TICKET_SALT, compress=True)


def read_entry_ticket(ticket):
    """The entry a ticket was made for ({"hit", "provider", "worker", "market_assignment_id", "turk_submit_to"}),
    or InvalidToken."""
    try:
        entry = signing.loads(ticket, salt=ENTRY_TICKET_SALT, max_age=ENTRY_TICKET_MAX_AGE_S)
    except signing.SignatureExpired:
        raise InvalidToken("the entry ticket has expired: reload the task page") from None
    except signing.BadSignature:
        raise InvalidToken("the entry ticket is not valid") from None
    return entry


def completion_code(assignment_uuid):
    """Unforgeable code for a finished assignment: HMAC of its uuid with the server secret (16 hex, upper case)."""
    message = f"completion:{assignment_uuid}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:16].upper()


def is_valid_completion_code(assignment_uuid, code):
    return hmac.compare_digest(completion_code(assignment_uuid), (code or "").strip().upper())
