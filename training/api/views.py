"""The training API: one view per operation; researchers (or staff) only."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.fields import query_text

from .. import selectors
from ..services import inference_jobs, jobs, registry, training_jobs
from ..models import JobStatus, ModelVersion, TrainingJob
from ..permissions import IsResearcher
from .serializers import (
    InferenceJobCreateInput,
    InferenceJobOutput,
    ModelVersionOutput,
    TrainingJobCreateInput,
    TrainingJobOutput,
)

DATASET_FILTER = OpenApiParameter("dataset", str, description="Only this dataset (by name).")


class TrainingJobListApi(ListAPIView):
    permission_classes = [IsResearcher]
    serializer_class = TrainingJobOutput

    @extend_schema(parameters=[
        DATASET_FILTER, OpenApiParameter("status", str, enum=JobStatus.values, description="Only this status."),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        status_filter = query_text(self.request, "status")
        if status_filter is not None and status_filter not in JobStatus.values:
            raise ValidationError({"status": [f"{status_filter[:40]!r} is not one of {', '.join(JobStatus.values)}"]})
        return selectors.training_jobs(dataset=query_text(self.request, "dataset"), status=status_filter)


class TrainingJobCreateApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=TrainingJobCreateInput, responses={201: TrainingJobOutput})
    def post(self, request):
        data = TrainingJobCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = training_jobs.create_training_job(
            **data.validated_data, source=TrainingJob.Source.API, created_by=request.user
        )
        return Response(TrainingJobOutput(job, context={"request": request}).data, status=status.HTTP_201_CREATED)


class TrainingJobDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=TrainingJobOutput)
    def get(self, request, job_id):
        job = get_object_or_404(selectors.training_jobs(), pk=job_id)
        return Response(TrainingJobOutput(job, context={"request": request}).data)


class TrainingJobCancelApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses={202: TrainingJobOutput})
    def post(self, request, job_id):
        job = jobs.cancel(get_object_or_404(TrainingJob, pk=job_id), actor=request.user)
        return Response(TrainingJobOutput(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class ModelVersionListApi(ListAPIView):
    permission_classes = [IsResearcher]
    serializer_class = ModelVersionOutput

    @extend_schema(parameters=[DATASET_FILTER])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.model_versions(dataset=query_text(self.request, "dataset"))


class ModelVersionDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=ModelVersionOutput)
    def get(self, request, version_id):
        version = get_object_or_404(selectors.model_versions(), pk=version_id)
        return Response(ModelVersionOutput(version, context={"request": request}).data)


class ModelVersionPromoteApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=ModelVersionOutput)
    def post(self, request, version_id):
        version = registry.promote_model_version(get_object_or_404(ModelVersion, pk=version_id), actor=request.user)
        return Response(ModelVersionOutput(version, context={"request": request}).data)


class InferenceJobCreateApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=InferenceJobCreateInput, responses={201: InferenceJobOutput})
    def post(self, request, version_id):
        data = InferenceJobCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = inference_jobs.create_inference_job(
            get_object_or_404(ModelVersion, pk=version_id), created_by=request.user, **data.validated_data
        )
        return Response(InferenceJobOutput(job).data, status=status.HTTP_201_CREATED)


class InferenceJobDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=InferenceJobOutput)
    def get(self, request, job_id):
        return Response(InferenceJobOutput(get_object_or_404(selectors.inference_jobs(), pk=job_id)).data)
