"""One error shape for the whole API: {"error": {"code", "message", "fields": {field: [why]}}}."""
import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5


class DatabaseUnavailable(exceptions.APIException):
    """The database could not be reached (restart, failover): nothing was stored, the client should retry."""

    status_code = 503
    default_code = "unavailable"
    default_detail = "the database is not reachable right now; nothing was stored, retry in a few seconds"


def _flatten(detail, prefix=""):
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list) and detail and all(isinstance(d, (dict, list)) for d in detail):
        out = {}
        for i, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{i}]"))
        return out
    messages = [str(d) for d in detail] if isinstance(detail, list) else [str(detail)]
    return {prefix or "non_field_errors": messages}


def error_body(code, message, fields=None):
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)  # get_object_or_404: code not_found, like the API's own 404s
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc, exc_info=True)
        exc = DatabaseUnavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()))
        message = f"{first[0]}: {first[1][0]}"
        response.data = error_body("invalid", message, fields)
    else:
        code = getattr(exc, "default_code", "error")
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response


def not_found(request, exception):
    """handler404: a path under /api/ that names no endpoint gets the API's error shape, not an HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)
    return page_not_found(request, exception)
