from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from annotator.csp import docs_page_policy
from annotator.files import PUBLIC_PREFIX
from annotator.views import StoredFileView, home

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI and ReDoc from our own static files (drf-spectacular-sidecar); the split view has no inline script.
    path("api/docs/", docs_page_policy(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/redoc/", docs_page_policy(
        SpectacularRedocView.as_view(url_name="api-schema", template_name="annotator/api/redoc.html")),
        name="api-redoc"),
    path("", include("annotator.urls")),
    path("", include("training.urls")),
    path("files/<path:name>", StoredFileView.as_view(), name="stored-file"),
]
handler404 = "annotator.api.errors.not_found"


def serve_media(request, path):
    """Local display images are served by the app itself in the embedded set-up; no other file is public."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)  # read per request: tests move MEDIA_ROOT


if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    urlpatterns.append(re_path(rf"^media/(?P<path>{PUBLIC_PREFIX}[^/]+)$", serve_media))
