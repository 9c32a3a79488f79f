"""Pseudo-labels (seed 004): the dataset's active model's confident predictions stand in for the labels of train
images that have none (ImageNet-style: no class; COCO-style: no objects), in the next training manifest only.

They are read from the active model's ImageScore rows (its inference job): ImageNet-style the top class when its
probability is at least the threshold (seed 004 uses 0.99); COCO-style every class among the scored top classes
at or above it. They never touch collected records (and so never reach a byproduct export); the manifest lists
their rows in ``source["pseudo_labelled_rows"]`` with the threshold and the model that gave them.
"""
from annotator.models import ImageScore

DEFAULT_THRESHOLD = 0.99


class PseudoLabelError(ValueError):
    """Pseudo-labels cannot be taken; the message names the option and why."""


def confident_labels(dataset, threshold):
    """{image id: [class indices]} of the active model's predictions at or above threshold, train images only."""
    version = dataset.active_model_version
    if not version:
        raise PseudoLabelError(
            f"pseudo_label_threshold: dataset {dataset.name} has no active model version to take pseudo-labels from"
        )
    index_of_key = dict(dataset.categories.values_list("key", "index"))
    scores = ImageScore.objects.filter(image__dataset=dataset, image__split="train", model_version=version)
    labels = {}
    for image_id, predicted in scores.values_list("image_id", "predicted"):
        top = predicted.get("top", [])[:1 if dataset.kind == "imagenet" else None]
        confident = sorted(index_of_key[key] for key, probability in top
                           if probability >= threshold and key in index_of_key)
        if confident:
            labels[image_id] = confident
    return labels
