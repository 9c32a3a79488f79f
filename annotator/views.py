"""The site's landing page: where each kind of user goes from here."""
from django.shortcuts import render
from django.urls import reverse

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
