"""Writes for byproduct datasets: exports (to a file, a storage, or as an ExportJob) and imports of the published
ImageNet-AB / COCO-AB files as an imported, approved batch."""
import gzip
import itertools
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from annotator import report
from annotator.models import (
    Assignment, Batch, Category, CocoRecord, ExportJob, Hit, HitPage, Image, ImageNetRecord, PageItem,
    PageSubmission, Provider, TaskKind, Worker,
)
from annotator.replay import replay_actions
from annotator.worker.services import coco_summary
from config.celery import send_on_commit

from . import coco_ab, imagenet_ab, jsonl, selectors
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
        logger.info("export job %s is not pending any more; nothing to do", job_id)
        return ExportJob.objects.get(pk=job_id)
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


class ImportFailed(ValueError):
    """The file cannot be imported as a whole; nothing was written. The message names the record and field."""


@dataclass
class ImportResult:
    batch: Batch
    records: int = 0
    unmatched_records: int = 0
    unmatched_examples: list = field(default_factory=list)
    duplicate_records: int = 0
    page_summaries: int = 0

    def note_unmatched(self, image_ref, count):
        self.unmatched_records += count
        if len(self.unmatched_examples) < UNMATCHED_EXAMPLES:
            self.unmatched_examples.append(image_ref)


UNMATCHED_EXAMPLES = 10
IMPORT_CHUNK = 1000
IMPORTED_WORKER_PREFIX = "ab-import:"
# Event times below this are epoch seconds, not milliseconds (1e11 ms is 1973; 1e11 s is far in the future).
EPOCH_MS_FLOOR = 10 ** 11


class _ImportedBatch:
    """Creates, once each, the workers, HITs, pages and approved assignments that imported records hang on."""

    def __init__(self, batch):
        self.batch = batch
        self.now = timezone.now()
        self.workers = {}
        self.hits = {}
        self.pages = {}
        self.assignments = {}
        # (assignment pk, page pk): what the page's review summary (PageSubmission) is made of.
        self.imagenet_pages = {}
        self.coco_pages = {}
        self.page_categories = {}
        self.shown = {}  # ImageNet-style page pk: {image pk: (y, x, in class)}, for the PageItems

    def worker_id(self, exported_worker_id):
        if exported_worker_id not in self.workers:
            worker, _ = Worker.objects.get_or_create(
                provider=Provider.LINK, external_id=f"{IMPORTED_WORKER_PREFIX}{exported_worker_id}"
            )
            self.workers[exported_worker_id] = worker.pk
        return self.workers[exported_worker_id]

    def hit_id(self, hit_key):
        if hit_key not in self.hits:
            hit = Hit.objects.create(
                batch=self.batch, index=len(self.hits), external_id=hit_key[:100], status=Hit.Status.COMPLETED
            )
            self.hits[hit_key] = hit.pk
        return self.hits[hit_key]

    def page_id(self, hit_key, page_index, category_id=None, image_id=None):
        key = (hit_key, page_index)
        if key not in self.pages:
            page = HitPage.objects.create(
                hit_id=self.hit_id(hit_key), index=page_index, category_id=category_id, image_id=image_id
            )
            self.pages[key] = page.pk
            self.page_categories[page.pk] = category_id
        return self.pages[key]

    def note_imagenet_record(self, record, label_id):
        """Count the record into its page's summary (the fields the worker path's page save writes, see
        annotator.worker.services._imagenet_rows), its event times and its place on the page."""
        summary = self.imagenet_pages.setdefault(
            (record.assignment_id, record.page_id),
            {"n_selected": 0, "n_in_class": 0, "n_in_class_selected": 0, "first": None, "last": None},
        )
        in_class = label_id is not None and label_id == self.page_categories.get(record.page_id)
        summary["n_selected"] += record.selected
        summary["n_in_class"] += in_class
        summary["n_in_class_selected"] += record.selected and in_class
        times = [
            event["time"] for series in (record.selected_record, record.deselected_record, record.hovered_record,
                                         record.mouse_tracking)
            for event in series if isinstance(event.get("time"), (int, float))
        ]
        if times:
            summary["first"] = min(times + ([summary["first"]] if summary["first"] is not None else []))
            summary["last"] = max(times + ([summary["last"]] if summary["last"] is not None else []))
        position = record.image_position or {}
        self.shown.setdefault(record.page_id, {}).setdefault(
            record.image_id, (position.get("y", 0), position.get("x", 0), in_class)
        )

    def note_coco_record(self, record, image, time_spent):
        self.coco_pages[(record.assignment_id, record.page_id)] = {
            "time_spent_ms": time_spent, **coco_summary(image, record.final_positions)
        }

    def write_page_summaries(self):
        """One PageSubmission per imported (assignment, page), as the worker path writes on a page save, so review,
        the report and the admin see imported pages like collected ones; ImageNet-style pages also get their
        PageItems (the images the page showed, in page order, in-class when of the page's class).

        ImageNet-AB carries no page time: time_spent_ms is the span of the page's recorded events (first to last
        hover, click or mouse sample), marked in `client`. Its records only cover the images that left a byproduct,
        so n_in_class counts the in-class images with a record.
        """
        submissions = []
        for (assignment_id, page_id), summary in self.imagenet_pages.items():
            first, last = summary.pop("first"), summary.pop("last")
            span = 0 if first is None else last - first
            if first is not None and last < EPOCH_MS_FLOOR:  # times in epoch seconds (as in seed 000, Figure A)
                span *= 1000
            submissions.append(PageSubmission(
                assignment_id=assignment_id, page_id=page_id, client_save_id=uuid.uuid4(), time_spent_ms=round(span),
                client={"imported": True, "time_spent": "span of the page's recorded events"}, **summary,
            ))
        items = [
            PageItem(page_id=page_id, image_id=image_id, position=position, in_class=in_class)
            for page_id, images in self.shown.items()
            for position, (image_id, (_, _, in_class)) in enumerate(
                sorted(images.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
            )
        ]
        for (assignment_id, page_id), summary in self.coco_pages.items():
            time_spent = summary.pop("time_spent_ms")
            submissions.append(PageSubmission(
                assignment_id=assignment_id, page_id=page_id, client_save_id=uuid.uuid4(), time_spent_ms=time_spent,
                client={"imported": True}, **summary,
            ))
        PageItem.objects.bulk_create(items, batch_size=IMPORT_CHUNK)
        PageSubmission.objects.bulk_create(submissions, batch_size=IMPORT_CHUNK)
        return len(submissions)

    def assignment_id(self, hit_key, exported_worker_id, external_id):
        key = (hit_key, exported_worker_id)
        if key not in self.assignments:
            assignment = Assignment.objects.create(
                hit_id=self.hit_id(hit_key), worker_id=self.worker_id(exported_worker_id),
                external_id=external_id[:100], state=Assignment.State.APPROVED,
                decision_source=Assignment.DecisionSource.ADMIN, submitted_at=self.now, reviewed_at=self.now,
                review={"imported": True},
            )
            self.assignments[key] = assignment.pk
        return self.assignments[key]


def _create_import_batch(dataset, kind, batch_name, export_format, source):
    if dataset.kind != kind:
        raise ImportFailed(f"{export_format} byproducts need a {kind}-style dataset; {dataset.name} is {dataset.kind}")
    batch_name = batch_name or slugify(f"{dataset.name}-{export_format}-import")[:100]
    if Batch.objects.filter(name=batch_name).exists():
        raise ImportFailed(f"batch {batch_name} already exists: choose another name with --batch")
    return Batch.objects.create(
        name=batch_name, dataset=dataset, task_kind=kind, round=0, provider=Provider.LINK,
        status=Batch.Status.CLOSED, provider_config={"imported": True, "format": export_format, "source": source},
    )


def _chunks(iterable, size):
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def import_imagenet_ab(dataset, fileobj, source="", batch_name=None, on_images=None):
    """Attach a published ImageNet-AB tarball to `dataset` as an imported, approved batch (all or nothing)."""
    with transaction.atomic():
        batch = _create_import_batch(dataset, TaskKind.IMAGENET, batch_name, ExportJob.Format.IMAGENET_AB, source)
        result = ImportResult(batch=batch)
        imported = _ImportedBatch(batch)
        try:
            for annotations in _chunks(imagenet_ab.read_tar(fileobj), IMPORT_CHUNK):
                images = dict(
                    Image.objects.filter(dataset=dataset, key__in=[a.stem for a in annotations])
                    .values_list("key", "pk")
                )
                labels = dict(Image.objects.filter(pk__in=images.values()).values_list("pk", "label_id"))
                records = []
                for annotation in annotations:
                    image_pk = images.get(annotation.stem)
                    if image_pk is None:
                        result.note_unmatched(annotation.stem, len(annotation.sessions))
                        continue
                    for session in annotation.sessions:
                        records.append(ImageNetRecord(
                            assignment_id=imported.assignment_id(
                                session.assignment_id, session.worker_id, session.assignment_id
                            ),
                            page_id=imported.page_id(session.assignment_id, session.page_idx, labels[image_pk]),
                            image_id=image_pk, selected=session.selected, selected_record=session.selected_record,
                            deselected_record=session.deselected_record,
                            hovered_record=session.hovered_record, mouse_tracking=session.mouse_tracking,
                            image_position=session.image_position, image_width=session.image_width,
                            image_height=session.image_height,
                        ))
                fresh = _bulk_create_counting_duplicates(ImageNetRecord, records, result)
                result.records += len(fresh)
                for record in fresh:
                    imported.note_imagenet_record(record, labels[record.image_id])
                if on_images:
                    on_images(len(annotations))
        except imagenet_ab.MalformedAnnotation as error:
            raise ImportFailed(str(error)) from None
        result.page_summaries = imported.write_page_summaries()
    logger.info("imported %d ImageNet-AB records into batch %s", result.records, batch.name)
    return result


def import_coco_ab(dataset, fileobj, source="", batch_name=None, on_records=None):
    """Attach a published COCO-AB JSON list (a text file, read as a stream) to `dataset` as an imported, approved
    batch (all or nothing)."""
    categories = dict(Category.objects.filter(dataset=dataset).values_list("name", "key"))
    known_keys = set(categories.values())
    with transaction.atomic():
        batch = _create_import_batch(dataset, TaskKind.COCO, batch_name, ExportJob.Format.COCO_AB, source)
        result = ImportResult(batch=batch)
        imported = _ImportedBatch(batch)
        try:
            _import_coco_records(dataset, coco_ab.read_json_list(fileobj), imported, result, categories, known_keys,
                                 on_records)
        except coco_ab.MalformedCocoAb as error:
            raise ImportFailed(str(error)) from None
        result.page_summaries = imported.write_page_summaries()
    logger.info("imported %d COCO-AB records into batch %s", result.records, batch.name)
    return result


def _import_coco_records(dataset, parsed, imported, result, categories, known_keys, on_records):
    for chunk_start, chunk in zip(itertools.count(0, IMPORT_CHUNK), _chunks(parsed, IMPORT_CHUNK)):
        keys = [str(r.image_id) for r in chunk]
        images = {
            image.key: image
            for image in Image.objects.filter(dataset=dataset, key__in=keys).only("key", "width", "height")
        }
        records = []
        for number, record in enumerate(chunk, start=chunk_start):
            image = images.get(str(record.image_id))
            if image is None:
                result.note_unmatched(str(record.image_id), 1)
                continue
            image_pk = image.pk
            actions = [
                _imported_action(action, categories, known_keys, f"record {number} actionHistories[{index}]")
                for index, action in enumerate(record.actionHistories)
            ]
            records.append(CocoRecord(
                assignment_id=imported.assignment_id(record.hit_key, record.worker_id, record.assignment_id or ""),
                page_id=imported.page_id(record.hit_key, record.page_index, image_id=image_pk),
                image_id=image_pk, image_width=record.imageWidth, image_height=record.imageHeight,
                time_spent=record.timeSpent, action_histories=actions,
                category_histories=msgspec.to_builtins(record.categoryHistories),
                mouse_tracking=msgspec.to_builtins(record.mouseTracking),
                final_positions=replay_actions(actions, strict=False),
            ))
        fresh = _bulk_create_counting_duplicates(CocoRecord, records, result)
        result.records += len(fresh)
        by_pk = {image.pk: image for image in images.values()}
        for record in fresh:
            imported.note_coco_record(record, by_pk[record.image_id], record.time_spent)
        if on_records:
            on_records(len(chunk))


def _imported_action(action, categories, known_keys, where):
    """A published action in our stored form: iconType as the category key (published files carry names)."""
    key = categories.get(action.iconType, action.iconType)
    if key not in known_keys:
        raise ImportFailed(f"{where}: iconType {action.iconType!r} is not a category of this dataset")
    stored = {"actionType": action.actionType, "iconType": key,
              "pointFrom": msgspec.to_builtins(action.pointFrom) if action.actionType != "add" else None}
    if action.actionType != "remove":
        stored["pointTo"] = msgspec.to_builtins(action.pointTo)
    stored["timeAt"] = action.timeAt
    return stored


def _bulk_create_counting_duplicates(model, records, result):
    """bulk_create; a record repeating an (assignment, page, image) already imported is counted, not written.
    Returns the records written."""
    unique = {}
    for record in records:
        key = (record.assignment_id, record.page_id, record.image_id)
        if key in unique:
            result.duplicate_records += 1
        unique[key] = record
    existing = set(
        model.objects.filter(assignment_id__in={k[0] for k in unique}, page_id__in={k[1] for k in unique})
        .values_list("assignment_id", "page_id", "image_id")
    )
    fresh = [record for key, record in unique.items() if key not in existing]
    result.duplicate_records += len(unique) - len(fresh)
    model.objects.bulk_create(fresh, batch_size=IMPORT_CHUNK)
    return fresh


def start_byproduct_report(batch):
    """Queue the batch's byproduct report (written into the default storage) once the transaction commits."""
    from .tasks import build_byproduct_report as build_byproduct_report_task

    send_on_commit(build_byproduct_report_task, batch.pk)


def build_byproduct_report(batch_id):
    url = report.write_report_to_storage(Batch.objects.select_related("dataset").get(pk=batch_id))
    logger.info("byproduct report of batch %s: %s", batch_id, url)
    return url
