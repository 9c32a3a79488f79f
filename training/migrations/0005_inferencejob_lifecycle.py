"""Inference jobs share the training jobs' lifecycle: the heartbeat, worker and run count they kept in progress
({"heartbeat_at", "worker", "requeued"}) move to the fields TrainingJob has (and back on reversal)."""
from datetime import datetime

from django.db import migrations, models


def lifecycle_into_fields(apps, schema_editor):
    InferenceJob = apps.get_model("training", "InferenceJob")
    for job in InferenceJob.objects.all():
        progress = dict(job.progress)
        beat = progress.pop("heartbeat_at", None)
        job.heartbeat_at = datetime.fromisoformat(beat) if beat else job.started_at
        job.worker_hostname = progress.pop("worker", "") or ""
        # attempts counts the deliveries that started the job: the requeued runs, plus the current or last one.
        job.attempts = progress.pop("requeued", 0) + (job.status != "queued" and job.started_at is not None)
        job.progress = progress
        job.save(update_fields=["heartbeat_at", "worker_hostname", "attempts", "progress"])


def lifecycle_into_progress(apps, schema_editor):
    InferenceJob = apps.get_model("training", "InferenceJob")
    for job in InferenceJob.objects.all():
        started = job.status != "queued" and job.started_at is not None
        job.progress = {**job.progress, "requeued": max(job.attempts - started, 0), "worker": job.worker_hostname,
                        **({"heartbeat_at": job.heartbeat_at.isoformat()} if job.heartbeat_at else {})}
        job.save(update_fields=["progress"])


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0004_trainingjob_source_labels"),
    ]

    operations = [
        migrations.AddField(
            model_name="inferencejob",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0, help_text="Deliveries that started running the job."),
        ),
        migrations.AddField(
            model_name="inferencejob",
            name="cancel_requested",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="inferencejob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="inferencejob",
            name="worker_hostname",
            field=models.CharField(blank=True, help_text="Celery worker running the job.", max_length=200),
        ),
        migrations.RunPython(lifecycle_into_fields, lifecycle_into_progress),
    ]
