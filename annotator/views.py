"""The site's landing page (where each kind of user goes from here) and the files view."""
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from . import files
from .csp import staff_page_policy


@staff_page_policy
def home(request):
    links = [
        {"title": "Review console", "url": reverse("review:batches"),
         "what": "requesters: batch dashboards, each worker's session replayed, approve / reject / bonus, block"},
        {"title": "Byproduct reports", "url": reverse("review:reports"),
         "what": "requesters and researchers: the click, trace and icon analyses of each batch (seed 000, section E)"},
        {"title": "Admin", "url": reverse("admin:index"),
         "what": "datasets, batches and HITs, publishing on a market, exports of the collected byproducts"},
        {"title": "Training", "url": reverse("admin:app_list", args=["training"]),
         "what": "researchers: training jobs and their progress, model versions, comparison and promotion"},
        {"title": "API docs (Swagger UI)", "url": reverse("api-docs"),
         "what": "the REST API, tried in the browser; the OpenAPI schema is at " + reverse("api-schema")},
        {"title": "API docs (ReDoc)", "url": reverse("api-redoc"), "what": "the same API as a reference to read"},
    ]
    return render(request, "annotator/home.html", {"links": links})


class StoredFileView(APIView):
    """A file from storage for the staff and researchers allowed to read it (annotator.files): the file itself
    from local storage, a redirect to a URL signed for FILE_URL_MAX_AGE seconds from a bucket. A byproduct report's
    HTML comes through here from a bucket too, so that its plots, named by relative links, come back here as well."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                              302: OpenApiResponse(description="to a short-lived signed URL of the bucket")})
    def get(self, request, name):
        if not files.may_read(request.user, name):
            raise PermissionDenied("this file is for staff (training artifacts: also the researchers group)")
        if not files.is_clean_name(name) or not default_storage.exists(name):
            raise NotFound(f"no stored file {name[:200]!r}")
        if not files.is_local() and not name.endswith(".html"):
            return HttpResponseRedirect(files.signed_url(name))
        response = FileResponse(default_storage.open(name, "rb"), as_attachment=not name.endswith((".html", ".png")))
        response["Cache-Control"] = "private, no-store"
        return response
