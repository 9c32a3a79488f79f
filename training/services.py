"""Writes of the training app: jobs (create, run, cancel, recover), the model registry, triggers, steering.

Torch and the engine are imported lazily, inside functions; CUDA is first touched by engine.run() inside a
job, in a prefork pool process, never in a web process or the Celery parent (which forks the pool).
"""
import collections
import dataclasses
import json
import logging
import shutil
import tempfile
import threading
import time
import types
import typing
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from annotator.models import Assignment, Batch, Dataset, ImageScore, Worker

from . import plots
from .models import BatchTrainingTrigger, InferenceJob, JobStatus, ModelVersion, TrainingJob

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 200
# TrainConfig fields that the service sets for every run; a job's config may not choose them.
SERVICE_CONFIG_FIELDS = ("manifest_path", "out_dir")


# --- configuration -------------------------------------------------------------------------------------------


def train_config_class():
    from training.ml.engine import TrainConfig

    return TrainConfig


def train_config_options():
    """Names of the TrainConfig options a job's config may set (all but the ones the service fills in)."""
    return [option.name for option in train_config_schema()]


# JSON types each TrainConfig annotation accepts, and bounds that keep a typo from queueing a run that never ends.
_OPTION_JSON_TYPES = {int: (int,), float: (int, float), str: (str,), bool: (bool,), tuple: (list,), dict: (dict,)}
_OPTION_BOUNDS = {
    "epochs": (1, 10_000), "batch_size": (1, 65_536), "img_size": (16, 4_096), "workers": (0, 256),
    "log_every": (1, 1_000_000), "lr": (0, 10), "weight_decay": (0, 10), "lambda_point": (0, 1e6),
    "pseudo_label_threshold": (0, 1), "cluster_d_positive": (0, 1), "cluster_d_negative": (0, 1),
    "min_feature_cells": (1, 1_024),
}
# What each option does, in the words the admin's form shows beside it.
_OPTION_HELP = {
    "model": "timm model name (test_resnet: a tiny model for trying things on the CPU).",
    "method": "baseline: labels only; luab: plus the point loss on the clicks (seed 000); attentive: point-guided "
              "pooling; patch: patch-level point loss (seed 001).",
    "epochs": "Passes over the training images.",
    "lambda_point": "Weight of the point loss; empty: seed 000's default for the data kind and backbone size.",
    "point_loss": "smooth_l1 (Huber) or mse.",
    "huber_beta": "Beta of the Smooth-L1 point loss.",
    "batch_size": "Images per step, per process.",
    "lr": "Learning rate.",
    "weight_decay": "Weight decay.",
    "warmup_epochs": "Epochs of learning-rate warm-up.",
    "label_smoothing": "Label smoothing of the classification loss.",
    "img_size": "Training crop size in pixels.",
    "crop_scale": "Random-resized-crop area range: two numbers, e.g. 0.08, 1.0.",
    "crop_ratio": "Random-resized-crop aspect-ratio range: two numbers.",
    "hflip": "Probability of a horizontal flip (the points move with it).",
    "color_jitter": "Colour jitter strength (0: off).",
    "test_crop_ratio": "Share of the image kept by the centre crop at evaluation.",
    "patch_focal_gamma": "Focal gamma of the patch-level point loss (method patch).",
    "seed": "Random seed.",
    "device": "auto: the GPU when there is one, else the CPU.",
    "amp": "bf16 autocast on the GPU (ignored on the CPU).",
    "channels_last": "Channels-last memory format; unknown: on the GPU only.",
    "compile": "torch.compile the model.",
    "workers": "Data loader processes.",
    "decode": "pil: JPEG decoding by Pillow on the CPU; device: on the GPU.",
    "checkpoint_path": "Local backbone weights to start from (nothing is downloaded).",
    "model_kwargs": "Extra timm.create_model arguments, a JSON object.",
    "eval_splits": "Splits evaluated after each epoch, comma-separated.",
    "log_every": "Steps between progress reports.",
}


@dataclasses.dataclass(frozen=True)
class TrainOption:
    """One option a job's config may set: what the API validates and the admin's form offers."""

    name: str
    kind: type  # int, float, str, bool, tuple or dict
    nullable: bool
    default: object
    choices: tuple
    bounds: tuple
    help: str


def _option_choices():
    from training.ml.data import DECODE_MODES
    from training.ml.losses import POINT_LOSSES
    from training.ml.models import METHODS

    return {"method": METHODS, "point_loss": POINT_LOSSES, "decode": DECODE_MODES, "device": ("auto", "cpu", "cuda")}


def train_config_schema():
    """The options of a job's config, in TrainConfig's order, with their type, default, choices, bounds and help."""
    config_class = train_config_class()
    hints = typing.get_type_hints(config_class)
    choices = _option_choices()
    schema = []
    for field in dataclasses.fields(config_class):
        if field.name in SERVICE_CONFIG_FIELDS:
            continue
        annotation = hints[field.name]
        allowed = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
            else (annotation,)
        kinds = [typing.get_origin(a) or a for a in allowed if a is not type(None)]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        schema.append(TrainOption(
            name=field.name, kind=kinds[0], nullable=type(None) in allowed, default=default,
            choices=tuple(choices.get(field.name, ())), bounds=_OPTION_BOUNDS.get(field.name, ()),
            help=_OPTION_HELP.get(field.name, ""),
        ))
    return schema


def _option_problem(option, value):
    """Why `value` cannot be the option (wrong JSON type, out of bounds, not a choice), or None."""
    if value is None:
        return None if option.nullable else "must not be null"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (isinstance(value, _OPTION_JSON_TYPES[option.kind]) and (
            is_number or not isinstance(value, bool) or option.kind is bool)):
        return f"{value!r} is not of type {option.kind.__name__}"
    if option.bounds and not option.bounds[0] <= value <= option.bounds[1]:
        return f"{value} is outside [{option.bounds[0]}, {option.bounds[1]}]"
    if option.choices and value not in option.choices:
        return f"{value!r} is not one of {', '.join(option.choices)}"
    return None


def validate_train_config(config):
    """Raise ValidationError naming each unknown option of a job's config, or the engine's objection to it."""
    if not isinstance(config, dict):
        raise ValidationError({"config": "must be an object of TrainConfig options"})
    options = {option.name: option for option in train_config_schema()}
    unknown = {
        f"config.{name}": f"unknown option; known: {', '.join(sorted(options))}"
        for name in config if name not in options
    }
    if unknown:
        raise ValidationError(unknown)
    wrong = {
        f"config.{name}": why for name, value in config.items() if (why := _option_problem(options[name], value))
    }
    if wrong:
        raise ValidationError(wrong)
    try:
        train_config_class()(manifest_path="", out_dir="", **config)
    except (TypeError, ValueError) as error:
        raise ValidationError({"config": str(error)}) from None


def job_output_dir(job):
    """The job's local working folder (checkpoints for resume, the manifest): TRAINING_WORK_DIR/<job id>."""
    return Path(settings.TRAINING_WORK_DIR) / str(job.pk)


# --- creating, queueing and cancelling jobs --------------------------------------------------------------------


def create_training_job(*, dataset, config=None, batches=(), source, created_by=None, triggered_by_batch=None,
                        enqueue=True):
    """A queued job; its Celery task is sent once the surrounding transaction commits (unless enqueue is False:
    the caller runs it in its own process with run_training_job)."""
    config = dict(config or {})
    validate_train_config(config)
    foreign = [batch.name for batch in batches if batch.dataset_id != dataset.pk]
    if foreign:
        raise ValidationError({"batches": f"not batches of dataset {dataset.name}: {', '.join(foreign)}"})
    if config.get("method") == "scl" and dataset.kind != "coco":
        raise ValidationError(
            {"config.method": f"scl trains from COCO-style icons; {dataset.name} is {dataset.kind}-style"}
        )
    if config.get("pseudo_label_threshold") is not None and not dataset.active_model_version:
        raise ValidationError({"config.pseudo_label_threshold": (
            f"dataset {dataset.name} has no active model version to take pseudo-labels from"
        )})
    with transaction.atomic():
        job = TrainingJob.objects.create(
            dataset=dataset, config=config, source=source, created_by=created_by,
            triggered_by_batch=triggered_by_batch, celery_task_id=str(uuid.uuid4()),
        )
        job.batches.set(batches)
        task_id = job.celery_task_id
        if enqueue:
            transaction.on_commit(lambda: _send_training_task(job.pk, task_id))
    logger.info("training job %s created for dataset %s (%s)", job.pk, dataset.name, source)
    return job


# On a queued job whose message the broker did not take; sweep_jobs sends it again (and clears this).
NOT_QUEUED = "not queued yet: the broker was unreachable; the sweeper sends it again"


def _send_training_task(job_id, task_id):
    """Send the job's message; with the broker down the job stays queued, marked NOT_QUEUED for sweep_jobs."""
    from config.celery import send_task

    from . import tasks

    if send_task(tasks.run_training_job, [job_id], task_id=task_id):
        return True
    TrainingJob.objects.filter(pk=job_id, status=JobStatus.QUEUED, celery_task_id=task_id).update(error=NOT_QUEUED)
    return False


def cancel_training_job(job, *, actor=None):
    """A queued job is cancelled at once; a running one stops at its next step (cooperative)."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise ValidationError({"status": f"training job {job.pk} already {job.status}"})
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    if job.status == JobStatus.QUEUED:
        _finish(job.pk, JobStatus.CANCELLED, only_if=Q(status=JobStatus.QUEUED))
    logger.info("training job %s: cancel requested by %s", job.pk, actor or "system")
    job.refresh_from_db()
    return job


def _finish(job_id, status, *, only_if=Q(), **fields):
    now = timezone.now()
    return TrainingJob.objects.filter(Q(pk=job_id) & only_if).exclude(status__in=[
        JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
    ]).update(status=status, finished_at=now, heartbeat_at=now, **fields)


# --- running a job (inside the Celery task) --------------------------------------------------------------------


def _claim_training_job(job_id, *, task_id, hostname):
    """Mark the job running for this delivery, or return None when another delivery owns it or it is over.

    A queued job is claimed; a running one only when this is the same message redelivered (its previous
    holder died, so the broker gave it back) or when its heartbeat went stale.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            logger.warning("training job %s does not exist; message dropped", job_id)
            return None
        orphaned = job.status == JobStatus.RUNNING and (
            job.celery_task_id == task_id or job.heartbeat_at is None or job.heartbeat_at < stale_before
        )
        if job.status != JobStatus.QUEUED and not orphaned:
            logger.info("training job %s is %s (task %s); delivery %s skipped", job_id, job.status,
                        job.celery_task_id, task_id)
            return None
        if job.cancel_requested:
            _finish(job.pk, JobStatus.CANCELLED)
            return None
        if job.attempts >= settings.TRAINING_MAX_ATTEMPTS:
            _finish(job.pk, JobStatus.FAILED, error=(
                f"its worker was lost {job.attempts} times (TRAINING_MAX_ATTEMPTS={settings.TRAINING_MAX_ATTEMPTS});"
                " last on " + (job.worker_hostname or "an unknown worker")
            ))
            return None
        if job.attempts:
            logger.warning("training job %s: attempt %s resumes from its last checkpoint", job.pk, job.attempts + 1)
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.celery_task_id = task_id
        job.worker_hostname = hostname or ""
        job.heartbeat_at = now
        job.started_at = job.started_at or now
        job.error = "" if job.error == NOT_QUEUED else job.error
        job.save(update_fields=[
            "status", "attempts", "celery_task_id", "worker_hostname", "heartbeat_at", "started_at", "error",
        ])
    return job


class LogTail(logging.Handler):
    """Keeps the last lines logged in this process while a job runs."""

    def __init__(self, previous=""):
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines = collections.deque(previous.splitlines(), maxlen=LOG_TAIL_LINES)

    def emit(self, record):
        self.lines.append(self.format(record))

    def text(self):
        return "\n".join(self.lines)


# What each step of the data snapshot reads (training.manifests.ManifestBuilder), as the researcher sees it.
SNAPSHOT_STEPS = {
    "images": "images", "labels": "ground-truth objects (labels)", "byproducts": "byproduct records",
    "boxes": "ground-truth boxes",
}


class SnapshotStopped(Exception):
    """The job was cancelled, or its delivery superseded, while its data snapshot was being built."""


class JobMonitor:
    """The job's callbacks, and a heartbeat thread, from the moment the job is claimed.

    on_snapshot_progress and on_progress write the snapshot's and the engine's progress to the job row
    (throttled to TRAINING_PROGRESS_INTERVAL). The thread beats the heartbeat, polls the cancel flag for
    should_stop, and copies finished epochs from the engine's metrics file (one JSON line per epoch), so a long
    snapshot or evaluation neither looks dead (the sweeper would deliver the job again) nor delays a cancel.
    """

    def __init__(self, job, metrics_path, log_tail, progress_listener=None):
        self.job_id = job.pk
        # The delivery this run is; once the job row names another (the sweeper requeued a job it thought lost),
        # this run is superseded: it stops at its next step and writes nothing more to the job.
        self.task_id = job.celery_task_id
        self.superseded = False
        self.progress_listener = progress_listener
        self.metrics_path = Path(metrics_path)
        self.log_tail = log_tail
        self.interval = settings.TRAINING_PROGRESS_INTERVAL
        self._epochs_copied = None
        self._last_write = 0.0
        self._snapshot_step, self._snapshot_started = None, 0.0
        self._cancel = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"training-job-{job.pk}-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopped.set()
        self._thread.join()

    def _beat(self):
        try:
            while not self._stopped.wait(self.interval):
                try:
                    self._beat_once()
                except DatabaseError as error:  # a missed beat is retried; only a long silence means "lost"
                    logger.warning("training job %s: heartbeat not written (%s)", self.job_id, error)
        finally:
            close_old_connections()

    def _beat_once(self):
        fields = {"heartbeat_at": timezone.now()}
        epoch_metrics = self._finished_epochs()
        if epoch_metrics is not None:
            fields["epoch_metrics"] = epoch_metrics
        if not TrainingJob.objects.filter(pk=self.job_id, celery_task_id=self.task_id).update(**fields):
            logger.warning("training job %s: delivery %s was superseded (requeued as lost); it stops", self.job_id,
                           self.task_id)
            self.superseded = True
            self._cancel.set()
            return
        if TrainingJob.objects.filter(pk=self.job_id, cancel_requested=True).exists():
            self._cancel.set()

    def _finished_epochs(self):
        """Every epoch record in metrics.jsonl when it has new ones since the last call, else None."""
        if not self.metrics_path.exists():
            return None
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        if len(lines) == self._epochs_copied:
            return None
        self._epochs_copied = len(lines)
        return [json.loads(line) for line in lines]

    def should_stop(self):
        return self._cancel.is_set()

    def on_snapshot_progress(self, reading, done, total):
        """The data snapshot's progress ("building the data snapshot: n of N images, ETA"), throttled like the
        engine's; a cancel or a superseding delivery stops the build at its next chunk."""
        if self.should_stop():
            raise SnapshotStopped
        now = time.monotonic()
        if self._snapshot_step != reading:
            self._snapshot_step, self._snapshot_started, self._last_write = reading, now, 0.0
        if done < total and now - self._last_write < self.interval:
            return
        self._last_write = now
        elapsed = now - self._snapshot_started
        eta_s = elapsed / done * (total - done) if done else None
        message = f"building the data snapshot: {done:,} of {total:,} {SNAPSHOT_STEPS[reading]}"
        if eta_s is not None:
            message += f", ETA {eta_s:.0f} s"
        progress = {"stage": "snapshot", "reading": reading, "done": done, "total": total, "eta_s": eta_s,
                    "message": message}
        if self.progress_listener is not None:
            self.progress_listener(progress)
        TrainingJob.objects.filter(pk=self.job_id, celery_task_id=self.task_id).update(
            progress=progress, heartbeat_at=timezone.now(), log_tail=self.log_tail.text()
        )

    def on_progress(self, progress):
        if self.progress_listener is not None:
            self.progress_listener(progress)
        now = time.monotonic()
        epoch_end = progress.get("step") == progress.get("steps")
        if not epoch_end and now - self._last_write < self.interval:
            return
        self._last_write = now
        TrainingJob.objects.filter(pk=self.job_id, celery_task_id=self.task_id).update(
            progress=progress, heartbeat_at=timezone.now(), log_tail=self.log_tail.text()
        )


def run_training_job(job_id, *, task_id, hostname="", progress_listener=None):
    """Run one delivery of a job: snapshot the data, train (resuming from a checkpoint), store, register.

    progress_listener(progress) also gets every progress report of the engine (a command's progress bar).
    """
    from billiard.exceptions import SoftTimeLimitExceeded

    from training.ml import engine  # torch: seconds to import, before the claim starts the heartbeat clock

    job = _claim_training_job(job_id, task_id=task_id, hostname=hostname)
    if job is None:
        return None
    mine = Q(celery_task_id=task_id)  # a superseded delivery must not end the job its successor runs
    log_tail = LogTail(job.log_tail)
    logging.getLogger().addHandler(log_tail)
    # The job's log keeps its INFO lines ("resuming ... at epoch N") under a worker started with -l warning too.
    training_logger = logging.getLogger("training")
    level = training_logger.level
    training_logger.setLevel(logging.INFO)
    try:
        out_dir = job_output_dir(job)
        with JobMonitor(job, out_dir / engine.METRICS_NAME, log_tail, progress_listener) as monitor:
            try:
                manifest_path = _snapshot_manifest(job, out_dir, monitor.on_snapshot_progress)
            except SnapshotStopped:
                result = {"status": "cancelled"}
            else:
                config = train_config_class()(**job.config, manifest_path=str(manifest_path), out_dir=str(out_dir))
                logger.info("training job %s: attempt %s on %s, manifest %s", job.pk, job.attempts, hostname,
                            job.manifest_hash[:16])
                result = engine.run(config, on_progress=monitor.on_progress, should_stop=monitor.should_stop)
            if monitor.superseded:
                return None
            if result["status"] == "cancelled":
                logger.info("training job %s cancelled", job.pk)
                _finish(job.pk, JobStatus.CANCELLED, only_if=mine, log_tail=log_tail.text())
                return None
            version = _complete_training_job(job, config, result, log_tail)  # still beating: storing takes a while
        shutil.rmtree(out_dir, ignore_errors=True)
        return version
    except SoftTimeLimitExceeded:
        logger.error("training job %s ran past TRAINING_TASK_TIME_LIMIT", job.pk)
        _finish(job.pk, JobStatus.FAILED, only_if=mine, log_tail=log_tail.text(),
                error=f"ran past TRAINING_TASK_TIME_LIMIT ({settings.TRAINING_TASK_TIME_LIMIT} s)")
    except Exception as error:  # noqa: BLE001 (whatever the engine raises ends the job as failed, with the reason)
        logger.exception("training job %s failed", job.pk)
        _finish(job.pk, JobStatus.FAILED, only_if=mine, log_tail=log_tail.text(),
                error=f"{type(error).__name__}: {error}")
    finally:
        logging.getLogger().removeHandler(log_tail)
        training_logger.setLevel(level)
    return None


def _snapshot_manifest(job, out_dir, progress=None):
    """The job's data snapshot: built once, reused by every later attempt so a resumed run sees the same data.
    progress(reading, done, total) follows the build (training.manifests.manifest_for)."""
    from training import manifests
    from training.ml import manifest as manifest_module

    if job.manifest_hash:
        existing = sorted(Path(out_dir).glob(f"manifest-{job.manifest_hash[:16]}.npz"))
        if existing:
            return existing[0]
    manifest = manifests.manifest_for(
        job.dataset, list(job.batches.all()) or None, progress=progress,
        pseudo_label_threshold=job.config.get("pseudo_label_threshold"), single_label=job.config.get("method") == "scl",
    )
    path = manifest_module.write(manifest, out_dir)
    if "pseudo_labelled_rows" in manifest.source:
        logger.info("training job %s: %d train images pseudo-labelled by %s at >= %s", job.pk,
                    len(manifest.source["pseudo_labelled_rows"]), manifest.source["pseudo_label_model"],
                    manifest.source["pseudo_label_threshold"])
    job.manifest_hash = manifest.content_hash
    TrainingJob.objects.filter(pk=job.pk).update(manifest_hash=manifest.content_hash)
    return path


def _complete_training_job(job, config, result, log_tail):
    history = result.get("history", [])
    metrics = result.get("metrics", {})
    prefix = f"training/jobs/{job.pk}"
    full_config = dict(result.get("config") or dataclasses.asdict(config), manifest_hash=job.manifest_hash)
    with open(result["checkpoint"], "rb") as checkpoint:
        artifacts = {"checkpoint": default_storage.save(f"{prefix}/checkpoint.pt", checkpoint)}
    artifacts["config"] = default_storage.save(
        f"{prefix}/config.json", ContentFile(json.dumps(full_config, indent=2, default=str).encode())
    )
    artifacts["metrics"] = default_storage.save(
        f"{prefix}/metrics.json", ContentFile(json.dumps({"metrics": metrics, "history": history}, indent=2).encode())
    )
    from training.ml.engine import PSEUDO_LABELS_NAME

    pseudo_labels = Path(config.out_dir) / PSEUDO_LABELS_NAME  # its rows marked "source": "pseudo_label"
    if pseudo_labels.exists():
        artifacts["pseudo_labels"] = default_storage.save(f"{prefix}/{pseudo_labels.name}",
                                                          ContentFile(pseudo_labels.read_bytes()))
    artifacts["curves"] = default_storage.save(f"{prefix}/curves.png", ContentFile(plots.curves_png({
        f"job {job.pk}": history
    })))
    with transaction.atomic():
        TrainingJob.objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now(), heartbeat_at=timezone.now(),
            metrics=metrics, epoch_metrics=history, artifacts=artifacts, log_tail=log_tail.text(),
        )
        version = ModelVersion.objects.create(
            name=f"{job.dataset.name[:80]}-job-{job.pk}", job=job, dataset=job.dataset,
            manifest_hash=job.manifest_hash, config=full_config, metrics=metrics, epoch_metrics=history,
            checkpoint=artifacts["checkpoint"],
        )
    logger.info("training job %s succeeded: model version %s registered (%s)", job.pk, version.name, metrics)
    return version


# --- recovering jobs whose worker died -------------------------------------------------------------------------


def recover_stale_jobs(*, hostname=None, started_at=None):
    """Requeue (to resume from the last checkpoint) or fail every running job whose worker is gone.

    Gone means a heartbeat older than TRAINING_HEARTBEAT_TIMEOUT, or, for a worker that has just started as
    hostname at started_at, any job it was running with a heartbeat from before it started.
    Returns {"requeued": [job ids], "failed": [job ids]}.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    lost = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before)
    if hostname and started_at:
        lost |= Q(worker_hostname=hostname, heartbeat_at__lt=started_at)
    outcome = {"requeued": [], "failed": []}
    for job_id in TrainingJob.objects.filter(lost, status=JobStatus.RUNNING).values_list("pk", flat=True):
        with transaction.atomic():
            job = TrainingJob.objects.select_for_update().filter(lost, pk=job_id, status=JobStatus.RUNNING).first()
            if job is None:
                continue
            lost_on = job.worker_hostname or "an unknown worker"
            if job.cancel_requested:
                _finish(job.pk, JobStatus.CANCELLED, error=f"cancelled; its worker {lost_on} was lost")
                outcome["failed"].append(job.pk)
            elif job.attempts >= settings.TRAINING_MAX_ATTEMPTS:
                _finish(job.pk, JobStatus.FAILED, error=(
                    f"its worker {lost_on} was lost {job.attempts} times"
                    f" (TRAINING_MAX_ATTEMPTS={settings.TRAINING_MAX_ATTEMPTS})"
                ))
                outcome["failed"].append(job.pk)
            else:
                job.status = JobStatus.QUEUED
                job.celery_task_id = str(uuid.uuid4())
                job.save(update_fields=["status", "celery_task_id"])
                task_id = job.celery_task_id
                transaction.on_commit(lambda job_id=job.pk, task_id=task_id: _send_training_task(job_id, task_id))
                outcome["requeued"].append(job.pk)
            logger.warning("training job %s lost its worker %s: %s", job.pk, lost_on,
                           "requeued" if job.pk in outcome["requeued"] else "ended")
    return outcome


def recover_stale_inference_jobs(*, hostname=None, started_at=None):
    """Requeue (scoring starts over; it overwrites its rows) or fail every running inference job whose worker is
    gone: no heartbeat for TRAINING_HEARTBEAT_TIMEOUT, or, for a worker that has just started as hostname at
    started_at, a job it was running before. Fails after TRAINING_MAX_ATTEMPTS runs.
    Returns {"requeued": [job ids], "failed": [job ids]}."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)

    def lost(job):
        beat = job.progress.get("heartbeat_at")
        beat = datetime.fromisoformat(beat) if beat else job.started_at
        if beat is None or beat < stale_before:
            return True
        return bool(hostname and started_at and job.progress.get("worker") == hostname and beat < started_at)

    outcome = {"requeued": [], "failed": []}
    for job_id in InferenceJob.objects.filter(status=JobStatus.RUNNING).values_list("pk", flat=True):
        with transaction.atomic():
            job = InferenceJob.objects.select_for_update().filter(pk=job_id, status=JobStatus.RUNNING).first()
            if job is None or not lost(job):
                continue
            lost_on = job.progress.get("worker") or "an unknown worker"
            runs = job.progress.get("requeued", 0) + 1
            if runs >= settings.TRAINING_MAX_ATTEMPTS:
                InferenceJob.objects.filter(pk=job.pk).update(
                    status=JobStatus.FAILED, finished_at=now,
                    error=f"its worker {lost_on} was lost {runs} times (TRAINING_MAX_ATTEMPTS="
                          f"{settings.TRAINING_MAX_ATTEMPTS})",
                )
                outcome["failed"].append(job.pk)
            else:
                task_id = str(uuid.uuid4())
                InferenceJob.objects.filter(pk=job.pk).update(
                    status=JobStatus.QUEUED, celery_task_id=task_id, progress={"requeued": runs},
                )
                transaction.on_commit(lambda job_id=job.pk, task_id=task_id: _send_inference_task(job_id, task_id))
                outcome["requeued"].append(job.pk)
            logger.warning("inference job %s lost its worker %s: %s", job.pk, lost_on,
                           "requeued" if job.pk in outcome["requeued"] else "failed")
    return outcome


def _task_ids_held_by_broker():
    """Task ids of the messages a Redis broker holds for the gpu queue (waiting, or delivered and not acknowledged),
    or None when the broker is not Redis or cannot be read."""
    from config.celery import app

    from . import tasks

    if not app.conf.broker_url.startswith(("redis://", "rediss://")):
        return None
    queue = app.amqp.router.route({}, tasks.run_training_job.name)["queue"].name
    try:
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            waiting, unacked = client.lrange(queue, 0, -1), client.hvals("unacked")
    except Exception as error:  # noqa: BLE001 (an unreadable broker: only jobs marked NOT_QUEUED are sent again)
        logger.warning("sweep: the broker's queue %s could not be read (%s)", queue, error)
        return None
    held = set()
    for raw, unwrap in [(raw, False) for raw in waiting] + [(raw, True) for raw in unacked]:
        try:
            message = json.loads(raw)
            held.add((message[0] if unwrap else message)["headers"]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return held


def resend_unsent_jobs():
    """Send again the queued training and inference jobs the broker did not take (NOT_QUEUED) or no longer holds (a
    Redis broker restarted without persistence: queued for longer than SWEEP_AFTER, its message in no queue), each
    under a new task id (a message that does turn up after all is then a duplicate the claim skips).
    Returns {"training": [job ids], "inference": [job ids]} of the jobs the broker took now."""
    outcome = {"training": [], "inference": []}
    held = _task_ids_held_by_broker()
    cutoff = timezone.now() - timedelta(seconds=settings.SWEEP_AFTER)
    for key, model, send in (("training", TrainingJob, _send_training_task),
                             ("inference", InferenceJob, _send_inference_task)):
        queued = model.objects.filter(status=JobStatus.QUEUED)
        unsent = set(queued.filter(error=NOT_QUEUED).values_list("pk", flat=True))
        if held is not None:
            unsent |= {pk for pk, task_id in queued.filter(created_at__lt=cutoff).values_list("pk", "celery_task_id")
                       if task_id not in held}
        for job_id in sorted(unsent):
            task_id = str(uuid.uuid4())
            if not model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(celery_task_id=task_id, error=""):
                continue
            if not send(job_id, task_id):
                logger.warning("sweep: the broker is still unreachable; %s job %s stays queued", key, job_id)
                break
            logger.warning("sweep: %s job %s was not in the broker; sent again", key, job_id)
            outcome[key].append(job_id)
    return outcome


def sweep_jobs():
    """The training sweeper (beat, or cron with `manage.py recover_training_jobs`): requeue or fail the training and
    inference jobs whose worker is gone, and send the queued jobs a broker outage left unsent.
    Returns {"requeued", "failed", "inference_requeued", "inference_failed", "resent"}."""
    training = recover_stale_jobs()
    inference = recover_stale_inference_jobs()
    resent = resend_unsent_jobs()
    return {
        "requeued": training["requeued"], "failed": training["failed"],
        "inference_requeued": inference["requeued"], "inference_failed": inference["failed"],
        "resent": resent["training"] + resent["inference"],
    }


# --- model registry ---------------------------------------------------------------------------------------------


def promote_model_version(version, *, actor=None):
    """Make version the dataset's one active model: it steers the dataset's next collection round."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=version.dataset_id)
        ModelVersion.objects.filter(dataset=dataset, is_active=True).exclude(pk=version.pk).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        dataset.active_model_version = version.name
        dataset.save(update_fields=["active_model_version"])
    logger.info("model version %s promoted for dataset %s by %s", version.name, dataset.name, actor or "system")
    version.refresh_from_db()
    return version


# --- triggers ---------------------------------------------------------------------------------------------------


def schedule_training_if_due(batch):
    """Schedule a job when the batch has gained train_every_n_approved more approved assignments since its
    last trigger. The batch row is locked and the count recorded, so one count never schedules two jobs; a
    triggered job of the dataset that has not taken its snapshot yet will train on the new approvals too, so
    none is added beside it (approving many assignments at once schedules one job)."""
    if not settings.TRAINING_ENABLED or not batch.train_every_n_approved:
        return None
    with transaction.atomic():
        batch = Batch.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=batch.pk)
        trigger, _ = BatchTrainingTrigger.objects.get_or_create(batch=batch)
        approved = Assignment.objects.filter(hit__batch=batch, state=Assignment.State.APPROVED).count()
        if approved - trigger.approved_count_at_last_trigger < batch.train_every_n_approved:
            return None
        job = TrainingJob.objects.filter(
            dataset=batch.dataset, source=TrainingJob.Source.TRIGGER, status=JobStatus.QUEUED, manifest_hash=""
        ).first()
        if job is None:
            active = ModelVersion.objects.filter(dataset=batch.dataset, is_active=True).first()
            config = {k: v for k, v in active.config.items() if k in train_config_options()} if active else {}
            job = create_training_job(
                dataset=batch.dataset, config=config, source=TrainingJob.Source.TRIGGER, triggered_by_batch=batch
            )
        trigger.approved_count_at_last_trigger = approved
        trigger.last_job = job
        trigger.save(update_fields=["approved_count_at_last_trigger", "last_job", "updated_at"])
    logger.info("batch %s reached %s approved assignments: training job %s", batch.name, approved, job.pk)
    return job


# --- steering: inference over a dataset -------------------------------------------------------------------------


def create_inference_job(version, *, uncertainty="entropy", created_by=None, enqueue=True):
    """A queued inference job, sent to Celery on commit (unless enqueue is False: see create_training_job)."""
    with transaction.atomic():
        job = InferenceJob.objects.create(
            model_version=version, uncertainty=uncertainty, created_by=created_by, celery_task_id=str(uuid.uuid4())
        )
        task_id = job.celery_task_id
        if enqueue:
            transaction.on_commit(lambda: _send_inference_task(job.pk, task_id))
    return job


def _send_inference_task(job_id, task_id):
    """Send the job's message; with the broker down the job stays queued, marked NOT_QUEUED for sweep_jobs."""
    from config.celery import send_task

    from . import tasks

    if send_task(tasks.run_inference_job, [job_id], task_id=task_id):
        return True
    InferenceJob.objects.filter(pk=job_id, status=JobStatus.QUEUED, celery_task_id=task_id).update(error=NOT_QUEUED)
    return False


def run_inference_job(job_id, *, task_id, hostname="", progress_listener=None):
    """Score every train image of the version's dataset (ImageScore: uncertainty, top classes, predicted points),
    then the agreement of each assignment and worker with the predicted points.

    Scoring overwrites its own rows, so the broker's redelivery of a message whose worker died (same task id)
    takes the job up again instead of leaving it running; any other duplicate delivery is skipped. The job's
    progress carries a heartbeat (heartbeat_at, worker): sweep_jobs requeues a job whose worker went silent."""
    redelivered = Q(status=JobStatus.RUNNING, celery_task_id=task_id)
    claimed = InferenceJob.objects.filter(Q(status=JobStatus.QUEUED) | redelivered, pk=job_id).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), celery_task_id=task_id, error=""
    )
    if not claimed:
        logger.info("inference job %s is not queued; delivery %s skipped", job_id, task_id)
        return None
    job = InferenceJob.objects.select_related("model_version__dataset").get(pk=job_id)
    job.progress = {"requeued": job.progress.get("requeued", 0), "worker": hostname or ""}
    _beat_inference(job)
    try:
        summary = _score_dataset(job, progress_listener)
    except Exception as error:  # noqa: BLE001 (any failure ends the job as failed, with the reason)
        logger.exception("inference job %s failed", job.pk)
        InferenceJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error=f"{type(error).__name__}: {error}"
        )
        return None
    InferenceJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now(),
                                                  summary=summary)
    logger.info("inference job %s with %s: %s", job.pk, job.model_version.name, summary)
    return summary


INFERENCE_BATCH_SIZE = 32


def _score_dataset(job, progress_listener=None):
    from . import inference, steering

    version = job.model_version
    dataset = version.dataset
    categories = list(dataset.categories.order_by("index").values_list("key", flat=True))
    images = list(dataset.images.filter(split="train").order_by("pk"))
    with tempfile.NamedTemporaryFile(suffix=".pt") as local_checkpoint:
        with default_storage.open(version.checkpoint.name, "rb") as stored:
            shutil.copyfileobj(stored, local_checkpoint)
        local_checkpoint.flush()
        loaded = inference.load_model(local_checkpoint.name, device=version.config.get("device", "auto"))
    if len(loaded.class_names) != len(categories):
        raise ValueError(
            f"model {version.name} has {len(loaded.class_names)} classes, dataset {dataset.name} {len(categories)}"
        )
    predicted_points = {}
    for start in range(0, len(images), INFERENCE_BATCH_SIZE):
        chunk = images[start:start + INFERENCE_BATCH_SIZE]
        image_bytes = []
        for image in chunk:
            with image.file.open("rb") as handle:
                image_bytes.append(handle.read())
        probabilities, points = inference.predict(loaded, image_bytes)
        flipped_probabilities, _ = inference.predict(loaded, image_bytes, flip=True)
        scores = steering.acquisition_scores(probabilities, flipped_probabilities, loaded.multi_label)
        rows = []
        for position, (image, image_probabilities, image_points) in enumerate(zip(chunk, probabilities, points)):
            predicted = _predicted_record(image_probabilities, image_points, categories, loaded.multi_label)
            predicted_points[image.pk] = predicted["points"] if loaded.multi_label else predicted["point"]
            acquisition = {measure: float(values[position]) for measure, values in scores.items()}
            rows.append(ImageScore(image=image, model_version=version.name, uncertainty=acquisition[job.uncertainty],
                                   acquisition=acquisition, predicted=predicted))
        ImageScore.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["image", "model_version"],
            update_fields=["uncertainty", "acquisition", "predicted"],
        )
        job.progress.update(images_done=start + len(chunk), images_total=len(images))
        _beat_inference(job)
        if progress_listener is not None:
            progress_listener({"images_done": start + len(chunk), "images_total": len(images)})
    agreement_summary = score_model_agreement(dataset, predicted_points, multi_label=loaded.multi_label)
    return {"images_scored": len(images), "uncertainty": job.uncertainty, **agreement_summary}


def _beat_inference(job):
    job.progress["heartbeat_at"] = timezone.now().isoformat()
    InferenceJob.objects.filter(pk=job.pk).update(progress=job.progress)


def _predicted_record(probabilities, points, categories, multi_label, top=3):
    """ImageScore.predicted: the top classes with their probabilities and the predicted point(s)."""
    order = np.argsort(-probabilities)[:top]
    record = {"top": [[categories[i], round(float(probabilities[i]), 6)] for i in order]}
    if multi_label:
        record["points"] = {categories[i]: [round(float(x), 5), round(float(y), 5)] for i, (x, y) in enumerate(points)}
    else:
        record["point"] = [round(float(points[0][0]), 5), round(float(points[0][1]), 5)]
    return record


def score_model_agreement(dataset, predicted_points, *, multi_label):
    """Assignment.model_agreement and Worker.model_agreement: share of a worker's clicks (ImageNet-style: first
    selecting click) or final icon positions (COCO-style) within steering.AGREEMENT_RADIUS of the model's points.

    predicted_points: {image id: (x, y)} ImageNet-style, {image id: {category key: (x, y)}} COCO-style.
    A signal for review, never a decision: nothing is approved or rejected here.
    """
    from . import steering

    decided_or_submitted = [Assignment.State.SUBMITTED, Assignment.State.APPROVED, Assignment.State.REJECTED]
    assignments = Assignment.objects.filter(hit__batch__dataset=dataset, state__in=decided_or_submitted)
    records_name = "coco_records" if multi_label else "imagenet_records"
    pairs_of = steering.coco_pairs if multi_label else steering.imagenet_pairs
    pairs_by_worker = collections.defaultdict(list)
    scored = []
    for assignment in assignments.prefetch_related(records_name):
        pairs = pairs_of(getattr(assignment, records_name).all(), predicted_points)
        assignment.model_agreement = steering.agreement(pairs)
        if assignment.model_agreement is not None:
            scored.append(assignment)
            pairs_by_worker[assignment.worker_id] += pairs
    with transaction.atomic():
        Assignment.objects.bulk_update(scored, ["model_agreement"], batch_size=500)
        for worker_id, pairs in pairs_by_worker.items():
            Worker.objects.filter(pk=worker_id).update(model_agreement=steering.agreement(pairs))
    return {"assignments_scored": len(scored), "workers_scored": len(pairs_by_worker)}
