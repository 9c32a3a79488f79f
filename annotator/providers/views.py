"""Calls from the markets: Prolific's webhook (submission.status.change), verified before anything is read."""
import hmac
import json
import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import authentication, permissions, serializers
from rest_framework.exceptions import APIException, AuthenticationFailed, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.schema import Error
from annotator.models import MarketNotification

from . import prolific

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Prolific-Request-Signature"
TIMESTAMP_HEADER = "X-Prolific-Request-Timestamp"
EVENT_ID_HEADER = "X-Event-ID"
PAYLOAD_FIELDS = ("resource_id", "participant_id", "status")


class ProlificSignature:
    """What a verified call carries: its signed timestamp and its signature."""

    def __init__(self, timestamp, signature):
        self.timestamp = timestamp
        self.signature = signature


class ProlificSignatureAuthentication(authentication.BaseAuthentication):
    """Prolific's signed calls: X-Prolific-Request-Signature is the base64 HMAC-SHA256 (PROLIFIC_WEBHOOK_SECRET) of
    X-Prolific-Request-Timestamp followed by the raw body. A call unsigned, wrongly signed, out of
    PROLIFIC_WEBHOOK_TOLERANCE seconds, or a signed call already received under another X-Event-ID, is refused.
    request.user stays anonymous; request.auth is the ProlificSignature."""

    def authenticate(self, request):
        secret = settings.PROLIFIC_WEBHOOK_SECRET
        if not secret:
            raise AuthenticationFailed("PROLIFIC_WEBHOOK_SECRET is not set: no call can be verified")
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        if not signature:
            raise AuthenticationFailed(f"{SIGNATURE_HEADER}: missing; the call is not signed")
        if not timestamp.isdigit():
            raise AuthenticationFailed(f"{TIMESTAMP_HEADER}: {timestamp[:20]!r} is not a UNIX timestamp")
        skew = abs(time.time() - int(timestamp))
        if skew > settings.PROLIFIC_WEBHOOK_TOLERANCE:
            raise AuthenticationFailed(
                f"{TIMESTAMP_HEADER}: {timestamp} is {skew:.0f} s from now; at most "
                f"{settings.PROLIFIC_WEBHOOK_TOLERANCE} s are accepted (a stale or replayed call)")
        if not hmac.compare_digest(prolific.signature(secret, timestamp, request.body), signature):
            raise AuthenticationFailed(f"{SIGNATURE_HEADER}: does not match the body and timestamp")
        seen = MarketNotification.objects.filter(signature=signature).values_list("event_id", flat=True).first()
        if seen is not None and seen != event_id_of(request, signature):
            raise ReusedCall(f"this signed call was already received as event {seen}: a replay")
        return AnonymousUser(), ProlificSignature(timestamp, signature)

    def authenticate_header(self, request):
        return f'{SIGNATURE_HEADER} realm="prolific-webhook"'


class ProlificSignatureScheme(OpenApiAuthenticationExtension):
    target_class = ProlificSignatureAuthentication
    name = "prolificSignature"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
                "description": "base64 HMAC-SHA256 of X-Prolific-Request-Timestamp + body (PROLIFIC_WEBHOOK_SECRET)."}


class HasProlificSignature(permissions.BasePermission):
    message = "a call signed by Prolific is required"

    def has_permission(self, request, view):
        return isinstance(request.auth, ProlificSignature)


def event_id_of(request, signature):
    """X-Event-ID, or the signature where Prolific sent none (a reuse of it is then the same event)."""
    return request.headers.get(EVENT_ID_HEADER, "").strip()[:100] or signature


class ReusedCall(APIException):
    status_code = 409
    default_code = "replayed"


class ProlificWebhookView(APIView):
    """Prolific's calls are signed, not logged in: no session, no CSRF, no throttle; the raw body is verified."""

    authentication_classes = [ProlificSignatureAuthentication]
    permission_classes = [HasProlificSignature]
    parser_classes = []

    @extend_schema(
        operation_id="prolific_webhook",
        description=(
            "Prolific's submission.status.change webhook. Signed: X-Prolific-Request-Signature is the base64 "
            "HMAC-SHA256 (PROLIFIC_WEBHOOK_SECRET) of X-Prolific-Request-Timestamp followed by the raw body; a call "
            "unsigned, wrongly signed, older or newer than PROLIFIC_WEBHOOK_TOLERANCE seconds, or replayed is refused "
            "(401, 409). X-Event-ID makes a redelivery harmless."
        ),
        request=inline_serializer("ProlificSubmissionStatusChange", {
            "resource_id": serializers.CharField(), "event_type": serializers.CharField(),
            "participant_id": serializers.CharField(), "status": serializers.CharField(),
        }),
        responses={200: inline_serializer("ProlificWebhookReceived", {
            "event_id": serializers.CharField(), "applied": serializers.BooleanField(),
            "reason": serializers.CharField(),
        }), 400: Error, 401: Error, 409: Error},
    )
    def post(self, request):
        payload = self.read_payload(request.body)
        event_id = event_id_of(request, request.auth.signature)
        sent_at = datetime.fromtimestamp(int(request.auth.timestamp), tz=UTC)
        applied, reason = prolific.receive_notification(event_id, sent_at, request.auth.signature, payload)
        logger.info("Prolific webhook %s: submission %s %s: %s", event_id, payload["resource_id"], payload["status"],
                    "applied" if applied else reason)
        return Response({"event_id": event_id, "applied": applied, "reason": reason})

    @staticmethod
    def read_payload(body):
        try:
            payload = json.loads(body)
        except ValueError:
            raise ValidationError({"body": "is not JSON"}) from None
        if not isinstance(payload, dict):
            raise ValidationError({"body": "must be a JSON object"})
        if payload.get("event_type") != "submission.status.change":
            raise ValidationError({"event_type": f"{payload.get('event_type')!r}: only submission.status.change is "
                                                 "subscribed"})
        for field in PAYLOAD_FIELDS:
            if not isinstance(payload.get(field), str) or not payload[field].strip():
                raise ValidationError({field: "must be a non-empty string"})
        return payload

