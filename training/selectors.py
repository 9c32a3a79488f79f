"""Reads of the training app."""
from annotator.models import ImageScore

from .models import InferenceJob, ModelVersion, TrainingJob


def training_jobs(*, dataset=None, status=None):
    jobs = TrainingJob.objects.select_related("dataset", "created_by", "model_version").prefetch_related("batches")
    if dataset is not None:
        jobs = jobs.filter(dataset__name=dataset)
    if status is not None:
        jobs = jobs.filter(status=status)
    return jobs


def model_versions(*, dataset=None):
    versions = ModelVersion.objects.select_related("dataset", "job")
    if dataset is not None:
        versions = versions.filter(dataset__name=dataset)
    return versions


def active_model_version(dataset):
    return ModelVersion.objects.filter(dataset=dataset, is_active=True).first()


def inference_jobs():
    return InferenceJob.objects.select_related("model_version__dataset")


def images_by_uncertainty(version):
    """The version's dataset images with a score, most uncertain first (ties by image key)."""
    return (
        ImageScore.objects.filter(model_version=version.name, image__dataset=version.dataset)
        .select_related("image")
        .order_by("-uncertainty", "image__key")
    )
