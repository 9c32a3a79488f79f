"""The worker path over HTTP: the task entry page and one API view per operation (docs/worker-api.md)."""
import functools
import logging
import math

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, UnreadablePostError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator import csp
from annotator.api.errors import DATABASE_RETRY_AFTER_S
from annotator.api.schema import Error, msgspec_schema
from annotator.models import Category, Hit
from annotator.providers.base import BadEntry, get_provider
from annotator.worker import schemas, selectors, services
from annotator.worker.authentication import (
    AssignmentRateThrottle,
    AssignmentTokenAuthentication,
    ClientAddressThrottle,
    HasAssignmentToken,
)
from annotator.worker.icons import icon_svg
from annotator.worker.tokens import InvalidToken, make_entry_ticket, make_token, read_entry_ticket, resume_key
from annotator.worker.validation import decode

logger = logging.getLogger(__name__)


def frame_headers(response):
    """Only our own pages and the configured crowd-market origins may frame the worker pages; no inline scripts."""
    response["Content-Security-Policy"] = csp.policy(["'self'", *settings.WORKER_FRAME_ANCESTORS])
    return response


def read_entry(hit, query):
    """The Entry the task URL's parameters describe, parsed by the HIT's market; TaskRefused (400) for a link whose
    ids we cannot take (a NUL character, too long) and, once the HIT is on the market, for one that carries another
    HIT's market id (MTurk's hitId, Prolific's STUDY_ID: a copied or tampered URL would record work against a HIT the
    market never assigned to the worker, and the market would never learn of it). A preview's market id is not checked."""
    try:
        entry = get_provider(hit.batch).parse_entry(hit.batch, query)
    except BadEntry as error:
        logger.warning("hit %s: entry refused, %s", hit.pk, error)
        raise services.TaskRefused(
            "This link is not valid",
            f"The task link is not valid ({error}). Please open the task again from the market's page.",
            status=400,
        ) from None
    if entry.worker_id and entry.market_hit_param and hit.external_id and entry.market_hit_id != hit.external_id:
        logger.warning("hit %s: entry refused, %s %r is not its market id %r", hit.pk, entry.market_hit_param,
                       entry.market_hit_id, hit.external_id)
        raise services.TaskRefused(
            "This link is not for this task",
            f"The {entry.market_hit_param} in this link does not match this task. "
            "Please open the task again from the market's page.",
            status=400,
        )
    return entry


def refused_page(request, title, message, status, retry_after=None):
    response = render(request, "annotator/worker/refused.html", {"title": title, "message": message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return frame_headers(response)


def unavailable_while_the_database_is_down(view):
    """A task page opened while the database cannot be reached (a restart, a failover) answers 503 with Retry-After
    and a page saying to reload, as the worker API answers its 503 (annotator.api.errors), not a bare 500."""
    @functools.wraps(view)
    def page(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            logger.warning("task page: database unavailable: %s", error)
            return refused_page(
                request, "Temporarily unavailable",
                f"This task cannot be opened right now. Please wait {DATABASE_RETRY_AFTER_S} seconds, then reload this "
                "page; nothing is lost.", 503, retry_after=DATABASE_RETRY_AFTER_S,
            )
    return page


def entry_address(request):
    """The keyed hash of the client address (the per-address limits' address): stored with each assignment it
    takes, never the address itself."""
    ident = ClientAddressThrottle("worker_entry").get_ident(request)
    return salted_hmac("worker-entry-address", ident).hexdigest()[:32]


@never_cache
@xframe_options_exempt
@require_GET
@unavailable_while_the_database_is_down
def task_entry(request, hit_id):
    """The task page: preview (records nothing), the worker's own assignment with its token, or, for work already
    started and opened without its proof, the locked page (no token, no data) that only the browser holding the
    assignment's token can open (resume_in_browser)."""
    throttle = ClientAddressThrottle("worker_entry")
    if not throttle.allow_request(request, None):
        # Anyone can open task URLs with made-up worker ids, each taking a place on a HIT: limit it per address.
        wait = math.ceil(throttle.wait() or 1)
        logger.warning("task entry: %s is over the entry limit", throttle.get_ident(request))
        return refused_page(
            request, "Too many requests", f"Please wait {wait} seconds, then reload this page.", 429, retry_after=wait
        )
    hit = get_object_or_404(Hit.objects.select_related("batch__dataset"), pk=hit_id)
    batch = hit.batch
    example_page = locked = None
    status_code = 200
    try:
        entry = read_entry(hit, request.GET)
        bootstrap = {
            "token": None,
            "api": reverse("worker-assignment").rsplit("/", 1)[0],
            "kind": batch.task_kind,
            "variant": batch.interface_variant,
            "n_pages": selectors.page_count(hit),
            "preview": not entry.worker_id,
            "market_assignment_id": entry.assignment_id or None,
            # Flush and retry timings of the page (common.js has the defaults); tests shorten them.
            "timing": getattr(settings, "WORKER_PAGE_TIMING", {}),
        }
        services.check_open_to_workers(batch)
        if entry.worker_id:
            bootstrap["resume"] = {"key": resume_key(hit.pk, batch.provider, entry.worker_id)}
            try:
                assignment = services.accept_assignment(
                    hit, entry.worker_id, entry.assignment_id, entry.turk_submit_to,
                    entry_address=entry_address(request),
                )
            except services.ResumeElsewhere as refusal:
                locked, status_code = {"title": refusal.title, "message": refusal.message}, refusal.status
                bootstrap["resume"]["entry"] = make_entry_ticket(
                    hit.pk, batch.provider, entry.worker_id, entry.assignment_id, entry.turk_submit_to
                )
            else:
                bootstrap.update(token=make_token(assignment), variant=assignment.interface_variant)
        else:
            first_page = selectors.page_of(hit, 0)
            example_page = selectors.page_content(first_page, hit) if first_page else None
    except services.TaskRefused as refusal:
        return refused_page(request, refusal.title, refusal.message, refusal.status)
    context = {
        "bootstrap": bootstrap,
        "preview": bootstrap["preview"],
        "locked": locked,
        "batch": batch,
        "hit": hit,
        "kind": batch.task_kind,
        "variant": bootstrap["variant"],
        "example_page": example_page,
    }
    return frame_headers(render(request, "annotator/worker/task.html", context, status=status_code))


@require_GET
def category_icon(request, category_id):
    category = get_object_or_404(Category, pk=category_id)
    response = HttpResponse(icon_svg(category), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class BodyTimeout(APIException):
    status_code = status.HTTP_408_REQUEST_TIMEOUT
    default_code = "timeout"


def body_stream(request):
    """What the body is read from: Django's stream, which ends at Content-Length; a chunked body has none (Django
    would read it as empty), so it is read from the server's own input, which decodes the chunks."""
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.META["wsgi.input"]
    return request._request


def read_body(request):
    """The raw body, refused with 413 from Content-Length before reading, and never read past the limit."""
    limit = settings.WORKER_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(f"the body has {declared} bytes; the limit is {limit}")
    try:
        body = body_stream(request).read(limit + 1)
    except (UnreadablePostError, OSError) as error:
        # The client stopped sending, or trickled past the server's deadline (config/gunicorn_worker.py).
        raise BodyTimeout(f"the body did not arrive: {error}") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    return body


class WorkerAPIView(APIView):
    """Token-authenticated (no cookies, no CSRF), throttled per assignment, bodies read raw for msgspec."""

    authentication_classes = [AssignmentTokenAuthentication]
    permission_classes = [HasAssignmentToken]
    throttle_classes = [AssignmentRateThrottle]
    throttle_scope = "worker"
    parser_classes = []

    def dispatch(self, request, *args, **kwargs):
        if "index" in kwargs:
            kwargs["index"] = int(kwargs["index"])  # the URL's regex allows only digits
        return super().dispatch(request, *args, **kwargs)

    def page(self, index):
        assignment = self.request.auth
        page = selectors.assignment_page(assignment, index)
        if page is None:
            n_pages = selectors.assignment_page_count(assignment)
            raise NotFound(f"page {index} is not in this HIT (it has {n_pages} pages)")
        return page


ERROR = Error


class AssignmentView(WorkerAPIView):
    @extend_schema(
        operation_id="worker_assignment",
        responses={200: inline_serializer("WorkerAssignment", {
            "assignment_id": serializers.UUIDField(),
            "kind": serializers.CharField(),
            "variant": serializers.CharField(),
            "n_pages": serializers.IntegerField(),
            "completed_pages": serializers.ListField(child=serializers.IntegerField()),
            "current_page": serializers.IntegerField(allow_null=True),
            "finished": serializers.BooleanField(),
            "completion_code": serializers.CharField(allow_null=True),
        }), 403: ERROR},
    )
    def get(self, request):
        return Response(selectors.assignment_progress(request.auth))


class PageView(WorkerAPIView):
    @extend_schema(operation_id="worker_page", responses={200: OpenApiTypes.OBJECT, 403: ERROR, 404: ERROR})
    def get(self, request, index):
        page = self.page(index)
        assignment = request.auth
        content = selectors.page_content(page, assignment.hit)
        content["saved"] = index in selectors.saved_pages(assignment)
        content["resume"] = {"events": selectors.resume_events(assignment, page)}
        return Response(content)


class PageEventsView(WorkerAPIView):
    @extend_schema(
        operation_id="worker_page_events",
        request={"application/json": msgspec_schema(schemas.EventBatchIn)},
        responses={
            201: inline_serializer("WorkerEventsStored", {"stored": serializers.IntegerField()}),
            200: inline_serializer("WorkerEventsAlreadyStored", {"stored": serializers.IntegerField()}),
            400: ERROR, 403: ERROR, 404: ERROR, 408: ERROR, 413: ERROR, 429: ERROR,
        },
    )
    def post(self, request, index):
        body = read_body(request)
        page = self.page(index)
        stored, created = services.record_event_flush(request.auth, page, body)
        return Response({"stored": stored}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PageSaveView(WorkerAPIView):
    @extend_schema(
        operation_id="worker_page_save",
        request={"application/json": msgspec_schema(schemas.ImageNetPageSave, schemas.CocoPageSave)},
        responses={
            **dict.fromkeys((201, 200), inline_serializer("WorkerPageSaved", {
                "saved": serializers.BooleanField(), "next_page": serializers.IntegerField(allow_null=True),
            })),
            400: ERROR, 403: ERROR, 404: ERROR, 408: ERROR, 409: ERROR, 413: ERROR, 429: ERROR,
        },
    )
    def post(self, request, index):
        body = read_body(request)
        page = self.page(index)
        created = services.save_page(request.auth, page, body)
        n_pages = selectors.assignment_page_count(request.auth)
        next_page = index + 1 if index + 1 < n_pages else None
        return Response(
            {"saved": True, "next_page": next_page}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class SubmitView(WorkerAPIView):
    @extend_schema(
        operation_id="worker_submit",
        request={"application/json": msgspec_schema(schemas.SubmitIn)},
        responses={200: inline_serializer("WorkerSubmitted", {
            "completion_code": serializers.CharField(),
            "turk_submit_to": serializers.URLField(allow_null=True),
            "redirect_url": serializers.URLField(allow_null=True),
            "market_assignment_id": serializers.CharField(),
        }), 403: ERROR, 408: ERROR, 409: ERROR, 413: ERROR},
    )
    def post(self, request):
        body = read_body(request)
        submit = decode(body or b"{}", schemas.SubmitIn)
        assignment, _ = services.submit_assignment(request.auth, partial=submit.partial)
        return Response(selectors.submit_answer(assignment))


class ResumeView(WorkerAPIView):
    @extend_schema(
        operation_id="worker_resume",
        request={"application/json": msgspec_schema(schemas.ResumeIn)},
        responses={200: inline_serializer("WorkerResumed", {"token": serializers.CharField()}),
                   400: ERROR, 403: ERROR, 408: ERROR, 409: ERROR, 413: ERROR, 429: ERROR},
    )
    def post(self, request):
        """The browser that kept this assignment's token opened the task URL again and got the locked page: with the
        entry ticket of that page, the work resumes here, under that entry's market ids, with a fresh token."""
        body = read_body(request)
        resume = decode(body or b"{}", schemas.ResumeIn)
        try:
            entry = read_entry_ticket(resume.entry)
        except InvalidToken as error:
            raise PermissionDenied(str(error)) from None
        assignment = services.resume_in_browser(request.auth, entry)
        return Response({"token": make_token(assignment)})
