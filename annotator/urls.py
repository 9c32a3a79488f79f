from django.urls import include, path

urlpatterns = [
    path("api/exports/", include("annotator.exports.urls")),
    path("", include("annotator.worker.urls")),
]
