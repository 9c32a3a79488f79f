"""Assignment-scoped worker tokens and completion codes.

A token names exactly one assignment (by its uuid) and is signed with SECRET_KEY, so the worker API needs no
cookie and no assignment id in the URL: there is nothing a worker could change to reach someone else's work.
"""
import hashlib
import hmac
import uuid

from django.conf import settings
from django.core import signing

TOKEN_SALT = "worker-token"


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


def completion_code(assignment_uuid):
    """Unforgeable code for a finished assignment: HMAC of its uuid with the server secret (16 hex, upper case)."""
    message = f"completion:{assignment_uuid}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:16].upper()


def is_valid_completion_code(assignment_uuid, code):
    return hmac.compare_digest(completion_code(assignment_uuid), (code or "").strip().upper())
