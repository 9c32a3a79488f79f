"""A tiny ImageNet-style dataset in the database for training-job tests: real JPEGs, approved clicks.

Class c's images are a square of colour c on a dark background; approved assignments click the square's centre.
"""
import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from annotator.models import Assignment, Split
from tests import factories

COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
# A config that trains in well under a second per epoch on a shared CPU.
TINY_CONFIG = {
    "model": "test_resnet", "epochs": 2, "batch_size": 4, "img_size": 32, "lr": 0.01, "device": "cpu",
    "log_every": 1,
}


def square_jpeg(colour, rng, size=32):
    pixels = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    side = int(rng.integers(10, 16))
    left, top = (int(v) for v in rng.integers(0, size - side, 2))
    pixels[top:top + side, left:left + side] = colour
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    centre = ((left + side / 2) / size, (top + side / 2) / size)
    return buffer.getvalue(), centre


def tiny_imagenet_dataset(train_per_class=4, val_per_class=1, approved=True, seed=0):
    """(dataset, batch): categories, train/val images, and one assignment per train image clicking its square."""
    rng = np.random.default_rng(seed)
    dataset = factories.DatasetFactory(kind="imagenet")
    batch = factories.BatchFactory(dataset=dataset)
    hit = factories.HitFactory(batch=batch)
    state = Assignment.State.APPROVED if approved else Assignment.State.SUBMITTED
    for index, colour in enumerate(COLOURS):
        category = factories.CategoryFactory(dataset=dataset, index=index, name=f"colour {index}")
        page = factories.HitPageFactory(hit=hit, category=category)
        for split, count in ((Split.TRAIN, train_per_class), (Split.VAL, val_per_class)):
            for i in range(count):
                data, centre = square_jpeg(colour, rng)
                image = factories.ImageFactory(
                    dataset=dataset, label=category, split=split, width=32, height=32,
                    file=ContentFile(data, name=f"{split}-{index}-{i}.jpg"),
                )
                if split == Split.VAL:
                    side = 0.2
                    factories.GroundTruthObjectFactory(
                        image=image, category=category,
                        bbox=[(centre[0] - side) * 32, (centre[1] - side) * 32, 2 * side * 32, 2 * side * 32],
                    )
                    continue
                assignment = factories.AssignmentFactory(hit=hit, state=state)
                factories.ImageNetRecordFactory(
                    assignment=assignment, page=page, image=image,
                    selected_record=[{"x": centre[0], "y": centre[1], "time": 1641425052000}],
                )
    return dataset, batch


def registered_version(dataset, *, metrics=None, epoch_metrics=None, config=None, name=None):
    """A succeeded job and its ModelVersion, as a finished run leaves them (the checkpoint file is a placeholder)."""
    from django.core.files.storage import default_storage

    from training.models import JobStatus, ModelVersion, TrainingJob

    job = TrainingJob.objects.create(
        dataset=dataset, status=JobStatus.SUCCEEDED, config=config or {}, manifest_hash="ab" * 32,
        metrics=metrics or {}, epoch_metrics=epoch_metrics or [],
    )
    checkpoint = default_storage.save(f"training/jobs/{job.pk}/checkpoint.pt", ContentFile(b"weights"))
    return ModelVersion.objects.create(
        name=name or f"{dataset.name}-job-{job.pk}", job=job, dataset=dataset, manifest_hash=job.manifest_hash,
        config=job.config, metrics=job.metrics, epoch_metrics=job.epoch_metrics, checkpoint=checkpoint,
    )
