"""training/migrations/0005: inference jobs' lifecycle moves from progress into the fields training jobs have."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.migrating import migrate, state_before

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("training", "0004_trainingjob_source_labels")
AFTER = ("training", "0005_inferencejob_lifecycle")
old_state = state_before(BEFORE)


def test_inference_jobs_keep_their_heartbeat_worker_and_runs_and_back(old_state):
    Dataset, TrainingJob, ModelVersion, InferenceJob = (old_state.get_model(*model.split(".")) for model in (
        "annotator.Dataset", "training.TrainingJob", "training.ModelVersion", "training.InferenceJob"))
    dataset = Dataset.objects.create(name="old", kind="imagenet")
    version = ModelVersion.objects.create(name="old-job-1", job=TrainingJob.objects.create(dataset=dataset),
                                          dataset=dataset, manifest_hash="a" * 64, checkpoint="c.pt")
    beat = timezone.now() - timedelta(seconds=30)
    running = InferenceJob.objects.create(
        model_version=version, status="running", started_at=beat - timedelta(seconds=60),
        progress={"images_done": 64, "images_total": 640, "heartbeat_at": beat.isoformat(), "requeued": 1,
                  "worker": "gpu-1"},
    )
    requeued = InferenceJob.objects.create(model_version=version, status="queued", progress={"requeued": 2})

    new = migrate(AFTER)
    InferenceJob = new.get_model("training", "InferenceJob")
    running_now, requeued_now = InferenceJob.objects.get(pk=running.pk), InferenceJob.objects.get(pk=requeued.pk)
    assert running_now.progress == {"images_done": 64, "images_total": 640}
    assert (running_now.heartbeat_at, running_now.worker_hostname, running_now.attempts) == (beat, "gpu-1", 2)
    assert requeued_now.progress == {} and requeued_now.attempts == 2 and requeued_now.heartbeat_at is None

    InferenceJob = migrate(BEFORE).get_model("training", "InferenceJob")
    assert InferenceJob.objects.get(pk=running.pk).progress == running.progress
    assert InferenceJob.objects.get(pk=requeued.pk).progress == {"requeued": 2, "worker": ""}
