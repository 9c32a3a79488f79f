"""Writes for exports: stream a batch's byproducts in one format to a file, a storage, or as an ExportJob."""
import gzip
import logging
from contextlib import contextmanager
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from annotator.models import Category, ExportJob, TaskKind

from . import coco_ab, imagenet_ab, jsonl, selectors
from .anonymise import WorkerAnonymiser

logger = logging.getLogger(__name__)

ITERATOR_CHUNK_SIZE = 2000
GZIP_LEVEL = 6
FILE_SUFFIX = {ExportJob.Format.IMAGENET_AB: "tar.gz", ExportJob.Format.COCO_AB: "json", ExportJob.Format.JSONL: "jsonl"}
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
    anonymise = anonymise or WorkerAnonymiser()
    kind = batch.task_kind
    if export_format == ExportJob.Format.IMAGENET_AB:
        rows = selectors.imagenet_records(batch, include_rejected).iterator(chunk_size=ITERATOR_CHUNK_SIZE)
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            return imagenet_ab.write_tar(
                rows, zipped, anonymise, selectors.objects_by_image, with_state=include_rejected,
                on_record=on_records,
            )
    if export_format == ExportJob.Format.COCO_AB:
        names = dict(Category.objects.filter(dataset_id=batch.dataset_id).values_list("key", "name"))
        rows = selectors.coco_records(batch, include_rejected).iterator(chunk_size=ITERATOR_CHUNK_SIZE)
        return coco_ab.write_json_list(
            rows, out, lambda row: coco_ab.coco_ab_record(row, anonymise, names, batch.name, include_rejected),
            on_record=on_records,
        )
    if kind == TaskKind.IMAGENET:
        rows = selectors.imagenet_records(batch, include_rejected, with_client=True)
        to_dict = jsonl.imagenet_record
    else:
        rows = selectors.coco_records(batch, include_rejected, with_client=True)
        to_dict = jsonl.coco_record
    return jsonl.write_lines(
        rows.iterator(chunk_size=ITERATOR_CHUNK_SIZE), out, lambda row: to_dict(row, anonymise, batch.name),
        on_record=on_records,
    )


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
    transaction.on_commit(lambda: run_export_job_task.delay(job.pk))
    return job


def run_export_job(job_id):
    """Run an ExportJob into the default storage, saving progress as it goes; failures are kept on the job."""
    job = ExportJob.objects.select_related("batch").get(pk=job_id)
    job.status, job.progress, job.error = ExportJob.Status.RUNNING, 0, ""
    job.save(update_fields=["status", "progress", "error"])
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
        job.status, job.error, job.finished_at = ExportJob.Status.FAILED, str(error), timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        return job
    job.file.name = name
    job.status, job.progress, job.record_count, job.finished_at = ExportJob.Status.DONE, 1.0, count, timezone.now()
    job.save(update_fields=["file", "status", "progress", "record_count", "finished_at"])
    logger.info("export job %s wrote %d records to %s", job.pk, count, name)
    return job
