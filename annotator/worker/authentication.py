"""DRF authentication, permission and throttles for the worker API: the token is the only credential."""
import logging

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from annotator.models import Assignment
from annotator.worker import selectors, services
from annotator.worker.tokens import InvalidToken, assignment_uuid_from_token
from config.cache import count_hit

logger = logging.getLogger(__name__)


class AssignmentTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`, or `?token=<token>` for navigator.sendBeacon (which cannot set headers).

    request.user stays anonymous (a worker is never a Django user); request.auth is the token's Assignment.
    A good token stops working at once (403 permission_denied) when its worker is blocked and when its assignment
    is given up: returned, or expired (an open one past its deadline expires here, on its first request after it).
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = request.query_params.get("token", "")
        try:
            assignment_uuid = assignment_uuid_from_token(token.strip())
        except InvalidToken as exc:
            self.refuse(request, str(exc))
        assignment = selectors.assignment_for_token(assignment_uuid)
        if assignment is None:
            self.refuse(request, "the worker token names no assignment")
        if assignment.worker_blocked:
            raise exceptions.PermissionDenied("your worker account is blocked: this work can no longer be changed")
        if assignment.is_overdue(timezone.now()) and services.expire_overdue(assignment=assignment):
            assignment.state = Assignment.State.EXPIRED
        if assignment.state == Assignment.State.EXPIRED:
            raise exceptions.PermissionDenied(
                f"the time for this task ran out at {assignment.deadline:%Y-%m-%d %H:%M} UTC before it was submitted; "
                "its place went back to the task" if assignment.deadline else "this assignment has expired"
            )
        if assignment.state == Assignment.State.RETURNED:
            raise exceptions.PermissionDenied("this assignment was returned")
        return AnonymousUser(), assignment

    @staticmethod
    def refuse(request, message):
        """403 for a missing, forged or expired token; 429 once its address sent too many ("worker_bad_token").

        Only bad requests count, and a good token is never refused for them: workers behind one address (a lab,
        a carrier's NAT) are not locked out by one broken or hostile client among them.
        """
        guard = ClientAddressThrottle("worker_bad_token")
        if guard.over_limit(request):
            logger.warning("worker API: %s is over the bad-token limit", guard.get_ident(request))
            raise exceptions.Throttled(guard.wait())
        guard.record()
        raise exceptions.AuthenticationFailed(message)


class HasAssignmentToken(permissions.BasePermission):
    message = "a worker token is required"

    def has_permission(self, request, view):
        return isinstance(request.auth, Assignment)


class AssignmentRateThrottle(throttling.ScopedRateThrottle):
    """The "worker" rate, counted per assignment, so one token cannot flood the server.

    Counted in fixed windows of the rate's period (a burst across a window's end may reach twice the rate), with
    one counter increment per request: DRF's sliding window reads and rewrites the list of every request time in
    the period (up to 600 pickled floats on each request, two Redis round trips).
    """

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, Assignment):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.window_left = (window + 1) * self.duration - now
        return count_hit(self.cache, f"{key}:{window}", self.duration + 1) <= self.num_requests

    def wait(self):
        return self.window_left


class ClientAddressThrottle(throttling.SimpleRateThrottle):
    """A rate (settings scope) counted per client address: REMOTE_ADDR, or the one NUM_PROXIES trusted proxies
    put in X-Forwarded-For. For what has no token to count by: task page entries and requests with a bad token.

    allow_request() checks and counts in one step; over_limit() only checks, and record() then counts.
    """

    def __init__(self, scope):
        self.scope = scope
        super().__init__()

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def over_limit(self, request):
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) >= self.num_requests

    def record(self):
        if self.rate is not None:
            self.throttle_success()


class AssignmentTokenScheme(OpenApiAuthenticationExtension):
    target_class = AssignmentTokenAuthentication
    name = "workerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer",
            "description": "Assignment-scoped worker token from the task page (or ?token= for beacons).",
        }
