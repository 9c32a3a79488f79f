from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.models import ExportJob

from . import services
from .serializers import ExportJobInputSerializer, ExportJobOutputSerializer


class ExportJobCreateView(APIView):
    """Start a byproduct export of a batch (staff only); poll the job for progress and the download URL."""

    @extend_schema(request=ExportJobInputSerializer, responses={202: ExportJobOutputSerializer})
    def post(self, request):
        data = ExportJobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.start_export_job(
            data.validated_data["batch"], data.validated_data["format"],
            include_rejected="rejected" in data.validated_data["include"], user=request.user,
        )
        return Response(ExportJobOutputSerializer(job, context={"request": request}).data, status.HTTP_202_ACCEPTED)


class ExportJobDetailView(APIView):
    @extend_schema(responses=ExportJobOutputSerializer)
    def get(self, request, job_id):
        job = get_object_or_404(ExportJob.objects.select_related("batch"), pk=job_id)
        return Response(ExportJobOutputSerializer(job, context={"request": request}).data)
