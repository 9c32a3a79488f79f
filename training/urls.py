from django.urls import path

from .api import views

app_name = "training"

urlpatterns = [
    path("api/training/jobs/", views.TrainingJobListApi.as_view(), name="job-list"),
    path("api/training/jobs/create/", views.TrainingJobCreateApi.as_view(), name="job-create"),
    path("api/training/jobs/<int:job_id>/", views.TrainingJobDetailApi.as_view(), name="job-detail"),
    path("api/training/jobs/<int:job_id>/cancel/", views.TrainingJobCancelApi.as_view(), name="job-cancel"),
    path("api/training/models/", views.ModelVersionListApi.as_view(), name="model-list"),
    path("api/training/models/<int:version_id>/", views.ModelVersionDetailApi.as_view(), name="model-detail"),
    path("api/training/models/<int:version_id>/promote/", views.ModelVersionPromoteApi.as_view(), name="model-promote"),
    path(
        "api/training/models/<int:version_id>/inference/", views.InferenceJobCreateApi.as_view(),
        name="inference-create",
    ),
    path("api/training/inference/<int:job_id>/", views.InferenceJobDetailApi.as_view(), name="inference-detail"),
]
