"""Training jobs: create and queue, run one delivery (snapshot the data, train, store, register), cancel."""
import collections
import json
import logging
import shutil
import time
from pathlib import Path

import msgspec
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from .. import plots
from ..models import JobStatus, ModelVersion, TrainingJob
from . import jobs
from .config import train_config_class, validate_train_config

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 200


def job_output_dir(job):
    """The job's local working folder (checkpoints for resume, the manifest): TRAINING_WORK_DIR/<job id>."""
    return Path(settings.TRAINING_WORK_DIR) / str(job.pk)


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
            triggered_by_batch=triggered_by_batch, celery_task_id=jobs.new_task_id(),
        )
        job.batches.set(batches)
        if enqueue:
            jobs.send_after_commit(job)
    logger.info("training job %s created for dataset %s (%s)", job.pk, dataset.name, source)
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


# What each step of the data snapshot reads (training.manifest_builder.ManifestBuilder), as the researcher sees it.
SNAPSHOT_STEPS = {
    "images": "images", "labels": "ground-truth objects (labels)", "byproducts": "byproduct records",
    "boxes": "ground-truth boxes",
}


class SnapshotStopped(Exception):
    """The job was cancelled, or its delivery superseded, while its data snapshot was being built."""


class JobMonitor(jobs.Heartbeat):
    """The training job's heartbeat, and its callbacks.

    on_snapshot_progress and on_progress write the snapshot's and the engine's progress to the job row
    (throttled to TRAINING_PROGRESS_INTERVAL); each beat also copies finished epochs from the engine's metrics file
    (one JSON line per epoch), so a long snapshot or evaluation neither looks dead nor delays a cancel.
    """

    def __init__(self, job, metrics_path, log_tail, progress_listener=None):
        super().__init__(job)
        self.progress_listener = progress_listener
        self.metrics_path = Path(metrics_path)
        self.log_tail = log_tail
        self._epochs_copied = None
        self._last_write = 0.0
        self._snapshot_step, self._snapshot_started = None, 0.0

    def beat_fields(self):
        epoch_metrics = self._finished_epochs()
        return {} if epoch_metrics is None else {"epoch_metrics": epoch_metrics}

    def _finished_epochs(self):
        """Every epoch record in metrics.jsonl when it has new ones since the last call, else None."""
        if not self.metrics_path.exists():
            return None
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        if len(lines) == self._epochs_copied:
            return None
        self._epochs_copied = len(lines)
        return [json.loads(line) for line in lines]

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
        self.write(progress=progress, heartbeat_at=timezone.now(), log_tail=self.log_tail.text())

    def on_progress(self, progress):
        if self.progress_listener is not None:
            self.progress_listener(progress)
        now = time.monotonic()
        epoch_end = progress.get("step") == progress.get("steps")
        if not epoch_end and now - self._last_write < self.interval:
            return
        self._last_write = now
        self.write(progress=progress, heartbeat_at=timezone.now(), log_tail=self.log_tail.text())


def run_training_job(job_id, *, task_id, hostname="", progress_listener=None):
    """Run one delivery of a job: snapshot the data, train (resuming from a checkpoint), store, register.

    progress_listener(progress) also gets every progress report of the engine (a command's progress bar).
    """
    from billiard.exceptions import SoftTimeLimitExceeded

    from training.ml import engine  # torch: seconds to import, before the claim starts the heartbeat clock

    job = jobs.claim(TrainingJob, job_id, task_id=task_id, hostname=hostname)
    if job is None:
        return None
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
                jobs.end_delivery(job, task_id, JobStatus.CANCELLED, log_tail=log_tail.text())
                return None
            version = _complete_training_job(job, config, result, log_tail)  # still beating: storing takes a while
        shutil.rmtree(out_dir, ignore_errors=True)
        return version
    except SoftTimeLimitExceeded:
        logger.error("training job %s ran past TRAINING_TASK_TIME_LIMIT", job.pk)
        jobs.fail(job, task_id, f"ran past TRAINING_TASK_TIME_LIMIT ({settings.TRAINING_TASK_TIME_LIMIT} s)",
                  log_tail=log_tail.text())
    except Exception as error:  # noqa: BLE001 (whatever the engine raises ends the job as failed, with the reason)
        logger.exception("training job %s failed", job.pk)
        jobs.fail(job, task_id, error, log_tail=log_tail.text())
    finally:
        logging.getLogger().removeHandler(log_tail)
        training_logger.setLevel(level)
    return None


def _snapshot_manifest(job, out_dir, progress=None):
    """The job's data snapshot: built once, reused by every later attempt so a resumed run sees the same data.
    progress(reading, done, total) follows the build (training.manifest_builder.manifest_for)."""
    from training import manifest_builder
    from training.ml import manifest as manifest_module

    if job.manifest_hash:
        existing = sorted(Path(out_dir).glob(f"manifest-{job.manifest_hash[:16]}.npz"))
        if existing:
            return existing[0]
    manifest = manifest_builder.manifest_for(
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
    full_config = dict(result.get("config") or msgspec.structs.asdict(config), manifest_hash=job.manifest_hash)
    with open(result["checkpoint"], "rb") as checkpoint:
        artifacts = {"checkpoint": default_storage.save(f"{prefix}/checkpoint.pt", checkpoint)}
    artifacts["config"] = default_storage.save(
        f"{prefix}/config.json", ContentFile(json.dumps(full_config, indent=2, default=str).encode())
    )
    artifacts["metrics"] = default_storage.save(
        f"{prefix}/metrics.json", ContentFile(json.dumps({"metrics": metrics, "history": history}, indent=2).encode())
    )
    from training.ml.engine import PSEUDO_LABELS_NAME  # loaded already: the job has just run

    pseudo_labels = Path(config.out_dir) / PSEUDO_LABELS_NAME  # its rows marked "source": "pseudo_label"
    if pseudo_labels.exists():
        artifacts["pseudo_labels"] = default_storage.save(f"{prefix}/{pseudo_labels.name}",
                                                          ContentFile(pseudo_labels.read_bytes()))
    artifacts["curves"] = default_storage.save(f"{prefix}/curves.png", ContentFile(plots.curves_png({
        f"job {job.pk}": history
    })))
    with transaction.atomic():
        jobs.finish(TrainingJob, job.pk, JobStatus.SUCCEEDED, metrics=metrics, epoch_metrics=history,
                    artifacts=artifacts, log_tail=log_tail.text())
        version = ModelVersion.objects.create(
            name=f"{job.dataset.name[:80]}-job-{job.pk}", job=job, dataset=job.dataset,
            manifest_hash=job.manifest_hash, config=full_config, metrics=metrics, epoch_metrics=history,
            checkpoint=artifacts["checkpoint"],
        )
    logger.info("training job %s succeeded: model version %s registered (%s)", job.pk, version.name, metrics)
    return version
