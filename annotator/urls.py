from django.urls import include, path

urlpatterns = [
    path("review/", include("annotator.review.urls")),
    path("api/exports/", include("annotator.exports.urls")),
    path("api/markets/", include("annotator.providers.urls")),
    path("", include("annotator.worker.urls")),
]
