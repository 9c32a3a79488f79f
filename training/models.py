"""Training jobs, the model registry, and the state of automatic training triggers.

A TrainingJob is one run of the engine (training/ml/) on a snapshot of the approved data; a finished job
registers a ModelVersion. An InferenceJob runs a model version over its dataset and writes annotator's
ImageScore rows and agreement scores, which steer the next collection round.
"""
from django.conf import settings
from django.db import models

from .steering import UNCERTAINTY_MEASURES


class JobStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """A job of the gpu queue: its one lifecycle (queued, claimed by a delivery, beating, finished, or requeued when
    its worker is lost) is training/services/jobs.py's."""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker_hostname = models.CharField(max_length=200, blank=True, help_text="Celery worker running the job.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Deliveries that started running the job.")
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_finished(self):
        return self.status in FINISHED_STATUSES


class TrainingJob(Job):
    class Source(models.TextChoices):
        API = "api", "REST API"
        ADMIN = "admin", "admin"
        COMMAND = "command", "command line (manage.py train or run_training_job)"
        TRIGGER = "trigger", "batch trigger (N more approved assignments)"

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.PROTECT, related_name="training_jobs")
    batches = models.ManyToManyField(
        "annotator.Batch", blank=True, related_name="training_jobs",
        help_text="Approved work of these batches only; none means every batch of the dataset.",
    )
    config = models.JSONField(default=dict, blank=True, help_text="TrainConfig options (training/ml) for this run.")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    triggered_by_batch = models.ForeignKey(
        "annotator.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="triggered_training_jobs"
    )
    manifest_hash = models.CharField(max_length=64, blank=True, help_text="Content hash of the data snapshot.")
    progress = models.JSONField(
        default=dict, blank=True, help_text="Latest epoch, step, loss, images_per_s and eta_s reported by the engine."
    )
    epoch_metrics = models.JSONField(default=list, blank=True, help_text="One entry of metrics per finished epoch.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Final metrics.")
    log_tail = models.TextField(blank=True)
    artifacts = models.JSONField(
        default=dict, blank=True, help_text="{checkpoint, config, metrics, curves}: names in the default storage."
    )

    class Meta(Job.Meta):
        permissions = [("manage_training", "Can launch, cancel and promote training runs")]

    def __str__(self):
        return f"training job {self.pk} on {self.dataset.name} ({self.status})"


class ModelVersion(models.Model):
    name = models.SlugField(
        max_length=100, unique=True,
        help_text="Version id stored in Dataset.active_model_version and ImageScore.model_version.",
    )
    job = models.OneToOneField(TrainingJob, on_delete=models.PROTECT, related_name="model_version")
    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.PROTECT, related_name="model_versions")
    manifest_hash = models.CharField(max_length=64)
    config = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    epoch_metrics = models.JSONField(default=list)
    checkpoint = models.FileField(max_length=500, help_text="Checkpoint file in the default storage.")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"], condition=models.Q(is_active=True), name="modelversion_one_active_per_dataset"
            )
        ]

    def __str__(self):
        return self.name


class InferenceJob(Job):
    """A model version run over its dataset: uncertainty and predicted points per image, agreement per worker."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="inference_jobs")
    uncertainty = models.CharField(
        max_length=16, default="entropy",
        choices=[(measure, measure) for measure in UNCERTAINTY_MEASURES],
        help_text="Acquisition score written to ImageScore.uncertainty (seed 004); every score is in "
                  "ImageScore.acquisition.",
    )
    progress = models.JSONField(default=dict, blank=True, help_text="{images_done, images_total}")
    summary = models.JSONField(default=dict, blank=True, help_text="Images scored, assignments and workers scored.")

    def __str__(self):
        return f"inference job {self.pk} with {self.model_version.name} ({self.status})"


class BatchTrainingTrigger(models.Model):
    """How many approved assignments a batch had when it last scheduled training (so a count fires once)."""

    batch = models.OneToOneField("annotator.Batch", on_delete=models.CASCADE, related_name="training_trigger")
    approved_count_at_last_trigger = models.PositiveIntegerField(default=0)
    last_job = models.ForeignKey(TrainingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"trigger of {self.batch.name} at {self.approved_count_at_last_trigger} approved"
