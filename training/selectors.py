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


# What a researcher reads off a run about the clicks' effect (training/ml/metrics.py), row label -> metric name.
LEARNING_EFFECT_ROWS = (
    ("top-1", "top1"),
    ("mAP", "mAP"),
    ("predicted = background class", "pred_is_background"),
    ("point accuracy", "point_accuracy"),
    ("centre prior's point accuracy", "centre_point_accuracy"),
)
EFFECT_SPLITS = ("val", "shifted")


def learning_effect(metrics, num_classes):
    """[(label, [value of each split in EFFECT_SPLITS, None when absent])] for the rows a run's metrics have, with
    chance (1 / classes) after top-1: on the shifted split it is also the top-1 of a background-only model."""
    rows = []
    for label, name in LEARNING_EFFECT_ROWS:
        values = [metrics.get(f"{split}_{name}") for split in EFFECT_SPLITS]
        if any(value is not None for value in values):
            rows.append((label, values))
        if name == "top1" and rows and num_classes:
            rows.append(("chance (1 / classes)", [1 / num_classes] * len(EFFECT_SPLITS)))
    return rows


def learning_effect_side_by_side(versions):
    """[("<split>: <label>", [value of each version or None])]: the learning_effect rows of several runs."""
    effects = [dict(learning_effect(v.metrics, v.dataset.categories.count())) for v in versions]
    labels = []
    for effect in effects:
        labels += [label for label in effect if label not in labels]
    return [
        (f"{split}: {label}", [effect[label][index] if label in effect else None for effect in effects])
        for index, split in enumerate(EFFECT_SPLITS) for label in labels
    ]
