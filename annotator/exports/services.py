"""Writes for byproduct datasets: exports (to a file, a storage, or as an ExportJob) and the byproduct report.
Imports of the published formats are annotator.importers.ab."""
import gzip
import logging
from contextlib import contextmanager
from pathlib import Path

import msgspec
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.utils import timezone

from annotator import report
from annotator.models import Batch, Category, ExportJob, TaskKind
from config.celery import send_on_commit
from luab import coco_ab, imagenet_ab

from . import jsonl, selectors
from .anonymise import WorkerAnonymiser

logger = logging.getLogger(__name__)

ITERATOR_CHUNK_SIZE = 2000
GZIP_LEVEL = 3
FILE_SUFFIX = {
    ExportJob.Format.IMAGENET_AB: "tar.gz", ExportJob.Format.COCO_AB: "json", ExportJob.Format.JSONL: "jsonl",
}
FORMAT_KINDS = {
    ExportJob.Format.IMAGENET_AB: {TaskKind.IMAGENET},
    ExportJob.Format.COCO_AB: {TaskKind.COCO},
    ExportJob.Format.JSONL: {TaskKind.IMAGENET, TaskKind.COCO},
}
# The job's progress is saved after at least this share of the records is written (not on every record).
PROGRESS_SAVE_STEP = 0.02


def validate_export(batch, export_format):
    if export_format not in FORMAT_KINDS:
        choices = ", ".join(ExportJob.Format.values)
        raise ValidationError({"format": f"unknown format {export_format!r}; choose one of {choices}"})
    if batch.task_kind not in FORMAT_KINDS[export_format]:
        raise ValidationError(
            {"format": f"{export_format} exports {'/'.join(FORMAT_KINDS[export_format])}-style batches; "
                       f"batch {batch.name} is {batch.task_kind}-style"}
        )


def count_records(batch, include_rejected=False):
    records = selectors.imagenet_records if batch.task_kind == TaskKind.IMAGENET else selectors.coco_records
    return records(batch, include_rejected).count()


def write_export(batch, export_format, out, include_rejected=False, on_records=None, anonymise=None):
    """Stream the batch's records in `export_format` into the binary file `out`; returns the record count.

    Memory stays flat whatever the size: rows come through a server-side cursor in chunks and each image or
    record is written before the next is read. `on_records(n)` is called as records are written.
    """
    validate_export(batch, export_format)
    with selectors.planned_for_all_rows():
        return _write_export(batch, export_format, out, include_rejected, on_records, anonymise or WorkerAnonymiser())


def _write_export(batch, export_format, out, include_rejected, on_records, anonymise):
    if export_format == ExportJob.Format.IMAGENET_AB:
        rows = selectors.json_columns(
            selectors.imagenet_records(batch, include_rejected).iterator(chunk_size=ITERATOR_CHUNK_SIZE),
            selectors.IMAGENET_JSON_FIELDS,
        )
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            return imagenet_ab.write_tar(
                rows, zipped, anonymise, selectors.objects_by_image, with_state=include_rejected,
                on_record=on_records,
            )
    if export_format == ExportJob.Format.COCO_AB:
        names = dict(Category.objects.filter(dataset_id=batch.dataset_id).values_list("key", "name"))
        rows = selectors.json_columns(
            selectors.coco_records(batch, include_rejected).iterator(chunk_size=ITERATOR_CHUNK_SIZE),
            selectors.COCO_JSON_FIELDS,
        )
        return coco_ab.write_json_list(
            rows, out, lambda row: coco_ab.coco_ab_record(row, anonymise, names, batch.name, include_rejected),
            on_record=on_records,
        )
    if batch.task_kind == TaskKind.IMAGENET:
        rows, json_fields = selectors.imagenet_records(batch, include_rejected, True), selectors.IMAGENET_JSON_FIELDS
        to_dict = jsonl.imagenet_record
    else:
        rows, json_fields = selectors.coco_records(batch, include_rejected, True), selectors.COCO_JSON_FIELDS
        to_dict = jsonl.coco_record
    # Stored JSON goes out as it is stored (full precision), without a decode and re-encode.
    rows = selectors.json_columns(
        rows.iterator(chunk_size=ITERATOR_CHUNK_SIZE), (*json_fields, "page_client"), msgspec.Raw
    )
    return jsonl.write_lines(rows, out, lambda row: to_dict(row, anonymise, batch.name), on_record=on_records)


def export_to_path(batch, export_format, path, include_rejected=False, on_records=None):
    """Write an export to a local file; returns the record count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        count = write_export(batch, export_format, out, include_rejected, on_records)
    logger.info("exported %d %s records of batch %s to %s", count, export_format, batch.name, path)
    return count


@contextmanager
def storage_writer(storage, name):
    """A binary file to write `name` into: a plain file for local storage, a multipart upload for S3."""
    try:
        local_path = Path(storage.path(name))
    except NotImplementedError:
        local_path = None
    if local_path is None:
        with storage.open(name, "wb") as out:
            yield out
        return
    local_path.parent.mkdir(parents=True, exist_ok=True)
    with open(local_path, "wb") as out:
        yield out


def start_export_job(batch, export_format, include_rejected=False, user=None):
    """Create an ExportJob and queue it once the transaction commits."""
    from .tasks import run_export_job as run_export_job_task

    validate_export(batch, export_format)
    job = ExportJob.objects.create(
        batch=batch, format=export_format, include_rejected=include_rejected, created_by=user
    )
    send_on_commit(run_export_job_task, job.pk)
    return job


def run_export_job(job_id):
    """Run an ExportJob into the default storage, saving progress as it goes; failures are kept on the job."""
    # Claimed once: a job the sweeper queued again while its first message was still waiting runs only once.
    if not ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.PENDING).update(
        status=ExportJob.Status.RUNNING, progress=0, error=""
    ):
        logger.info("export job %s is not pending any more (or was deleted); nothing to do", job_id)
        return ExportJob.objects.filter(pk=job_id).first()
    job = ExportJob.objects.select_related("batch").get(pk=job_id)
    total = max(count_records(job.batch, job.include_rejected), 1)
    written = 0
    saved_progress = 0.0

    def on_records(count):
        nonlocal written, saved_progress
        written += count
        if written / total - saved_progress >= PROGRESS_SAVE_STEP:
            saved_progress = written / total
            ExportJob.objects.filter(pk=job.pk).update(progress=saved_progress, record_count=written)

    name = default_storage.get_available_name(
        f"exports/{job.batch.name}-{job.format}-{job.pk}.{FILE_SUFFIX[job.format]}"
    )
    try:
        with storage_writer(default_storage, name) as out:
            count = write_export(job.batch, job.format, out, job.include_rejected, on_records)
    except Exception as error:
        logger.exception("export job %s failed", job.pk)
        if default_storage.exists(name):
            default_storage.delete(name)
        job.status, job.error, job.finished_at = ExportJob.Status.FAILED, str(error), timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        return job
    job.file.name = name
    job.status, job.progress, job.record_count, job.finished_at = ExportJob.Status.DONE, 1.0, count, timezone.now()
    job.save(update_fields=["file", "status", "progress", "record_count", "finished_at"])
    logger.info("export job %s wrote %d records to %s", job.pk, count, name)
    return job


def start_byproduct_report(batch):
    """Queue the batch's byproduct report (written into the default storage) once the transaction commits."""
    from .tasks import build_byproduct_report as build_byproduct_report_task

    send_on_commit(build_byproduct_report_task, batch.pk)


def build_byproduct_report(batch_id):
    url = report.write_report_to_storage(Batch.objects.select_related("dataset").get(pk=batch_id))
    logger.info("byproduct report of batch %s: %s", batch_id, url)
    return url
