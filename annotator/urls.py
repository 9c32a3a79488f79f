from django.urls import include, path

urlpatterns = [
    path("api/exports/", include("annotator.exports.urls")),
]
