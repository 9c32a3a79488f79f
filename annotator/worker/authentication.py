"""DRF authentication, permission and throttle for the worker API: the token is the only credential."""
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from annotator.models import Assignment
from annotator.worker.tokens import InvalidToken, assignment_uuid_from_token


class AssignmentTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`, or `?token=<token>` for navigator.sendBeacon (which cannot set headers).

    request.user stays anonymous (a worker is never a Django user); request.auth is the token's Assignment.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = request.query_params.get("token", "")
        try:
            assignment_uuid = assignment_uuid_from_token(token.strip())
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        assignment = (
            Assignment.objects.select_related("hit__batch").filter(uuid=assignment_uuid).first()
        )
        if assignment is None:
            raise exceptions.AuthenticationFailed("the worker token names no assignment")
        return AnonymousUser(), assignment


class HasAssignmentToken(permissions.BasePermission):
    message = "a worker token is required"

    def has_permission(self, request, view):
        return isinstance(request.auth, Assignment)


class AssignmentRateThrottle(throttling.ScopedRateThrottle):
    """The "worker" rate, counted per assignment, so one token cannot flood the server."""

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, Assignment):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class AssignmentTokenScheme(OpenApiAuthenticationExtension):
    target_class = AssignmentTokenAuthentication
    name = "workerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer",
            "description": "Assignment-scoped worker token from the task page (or ?token= for beacons).",
        }
