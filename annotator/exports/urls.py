from django.urls import path

from . import views

urlpatterns = [
    path("", views.ExportJobCreateView.as_view(), name="export-create"),
    path("<int:job_id>/", views.ExportJobDetailView.as_view(), name="export-detail"),
]
