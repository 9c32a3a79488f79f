"""Imports of the published byproducts (ImageNet-AB tarballs, COCO-AB JSON lists) as an imported, approved batch
of a dataset: the records, and what the worker path writes beside them (workers, HITs, pages, assignments, page
summaries, PAGE_SAVED events), so imported work looks like collected work downstream."""
import itertools
import logging
import uuid
from dataclasses import dataclass, field

import msgspec
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from annotator import events
from annotator.bulk import insert_rows
from annotator.importers.common import analyze
from annotator.models import (
    Assignment, Batch, Category, CocoRecord, Event, ExportJob, GroundTruthObject, Hit, HitPage, Image,
    ImageNetRecord, PageItem, PageSubmission, Provider, TaskKind, Worker, hash_worker_id,
)
from luab import coco_ab, imagenet_ab
from luab.actions import action_dict, replay_actions
from luab.summaries import IMAGENET_SUMMARY, coco_page_summary, imagenet_page_summary

logger = logging.getLogger(__name__)


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
# A COCO-style page summary's fields, as PageSubmission stores them (the other kind's stay 0).
COCO_SUMMARY = ("n_gt_categories", "n_tagged_correct", "n_icons", "n_icons_on_mask")


@dataclass
class _Session:
    """Where one imported record goes: its HIT, worker and page, and what a new page is made of."""

    hit_key: str
    worker_id: str
    external_id: str
    page_index: int
    category_id: int = None
    image_id: int = None


class _ImportedBatch:
    """The workers, HITs, pages and approved assignments that imported records hang on, made a chunk of records at
    a time: looked up and created in bulk, nothing kept between chunks, so memory does not grow with the file."""

    def __init__(self, batch):
        self.batch = batch
        self.now = timezone.now()
        self.hit_count = 0

    def place(self, sessions):
        """({(hit key, exported worker id): assignment pk}, {(hit key, page index): (page pk, HIT pk)}) for the
        sessions (_Session), creating what is not there yet in first-seen order."""
        hits = self._hits(dict.fromkeys(session.hit_key for session in sessions))
        workers = self._workers(dict.fromkeys(session.worker_id for session in sessions))
        return self._assignments(sessions, hits, workers), self._pages(sessions, hits)

    def _hits(self, hit_keys):
        external_ids = {hit_key: hit_key[:100] for hit_key in hit_keys}
        stored = dict(
            Hit.objects.filter(batch=self.batch, external_id__in=external_ids.values()).values_list("external_id", "pk")
        )
        missing = [external_id for external_id in dict.fromkeys(external_ids.values()) if external_id not in stored]
        created = Hit.objects.bulk_create(
            Hit(batch=self.batch, index=self.hit_count + offset, external_id=external_id, status=Hit.Status.COMPLETED)
            for offset, external_id in enumerate(missing)
        )
        self.hit_count += len(created)
        stored.update((hit.external_id, hit.pk) for hit in created)
        return {hit_key: stored[external_id] for hit_key, external_id in external_ids.items()}

    def _workers(self, exported_ids):
        external_ids = {exported_id: f"{IMPORTED_WORKER_PREFIX}{exported_id}" for exported_id in exported_ids}
        stored = dict(
            Worker.objects.filter(provider=Provider.LINK, external_id__in=external_ids.values())
            .values_list("external_id", "pk")
        )
        created = Worker.objects.bulk_create(
            Worker(provider=Provider.LINK, external_id=external_id,
                   hashed_id=hash_worker_id(Provider.LINK, external_id))
            for external_id in external_ids.values() if external_id not in stored
        )
        stored.update((worker.external_id, worker.pk) for worker in created)
        return {exported_id: stored[external_id] for exported_id, external_id in external_ids.items()}

    def _assignments(self, sessions, hits, workers):
        stored = {
            (hit_id, worker_id): pk for hit_id, worker_id, pk in
            Assignment.objects.filter(hit_id__in=set(hits.values())).values_list("hit_id", "worker_id", "pk")
        }
        missing = {}
        for session in sessions:
            key = (hits[session.hit_key], workers[session.worker_id])
            if key not in stored and key not in missing:
                missing[key] = Assignment(
                    hit_id=key[0], worker_id=key[1], external_id=session.external_id[:100],
                    state=Assignment.State.APPROVED, decision_source=Assignment.DecisionSource.ADMIN,
                    submitted_at=self.now, reviewed_at=self.now, review={"imported": True},
                )
        Assignment.objects.bulk_create(missing.values())
        stored.update((key, assignment.pk) for key, assignment in missing.items())
        return {
            (session.hit_key, session.worker_id): stored[hits[session.hit_key], workers[session.worker_id]]
            for session in sessions
        }

    def _pages(self, sessions, hits):
        stored = {
            (hit_id, index): pk for hit_id, index, pk in
            HitPage.objects.filter(hit_id__in=set(hits.values())).values_list("hit_id", "index", "pk")
        }
        missing = {}
        for session in sessions:
            key = (hits[session.hit_key], session.page_index)
            if key not in stored and key not in missing:
                missing[key] = HitPage(hit_id=key[0], index=key[1], category_id=session.category_id,
                                       image_id=session.image_id)
        HitPage.objects.bulk_create(missing.values())
        stored.update((key, page.pk) for key, page in missing.items())
        return {
            (session.hit_key, session.page_index): (stored[hits[session.hit_key], session.page_index],
                                                    hits[session.hit_key])
            for session in sessions
        }


class _PageRows:
    """What the worker path writes on a page save, for imported pages: the PageSubmission (review summary), the
    PAGE_SAVED event and, ImageNet-style, the PageItems; inserted in bulk a chunk at a time."""

    def __init__(self, now):
        self.now = now
        self.pending = {PageSubmission: [], Event: [], PageItem: []}
        self.pages_saved = 0

    def add_page(self, assignment_id, page_id, page_index, hit_id, time_spent_ms, client, summary):
        self.pages_saved += 1
        self._add(PageSubmission, {
            "assignment": assignment_id, "page": page_id, "client_save_id": uuid.uuid4(), "saved_at": self.now,
            "time_spent_ms": time_spent_ms, "client": client,
            **dict.fromkeys(IMAGENET_SUMMARY + COCO_SUMMARY, 0), **summary,
        })
        self._add(Event, events.page_saved_row(hit_id=hit_id, assignment_id=assignment_id, page=page_index,
                                               summary=summary, created_at=self.now))

    def add_item(self, page_id, image_id, position, in_class):
        self._add(PageItem, {"page": page_id, "image": image_id, "position": position, "in_class": in_class,
                             "is_gold": False})

    def _add(self, model, row):
        rows = self.pending[model]
        rows.append(row)
        if len(rows) >= IMPORT_CHUNK:
            self._flush(model)

    def _flush(self, model):
        if self.pending[model]:
            insert_rows(model, self.pending[model])
            self.pending[model] = []

    def flush(self):
        for model in self.pending:
            self._flush(model)
        return self.pages_saved


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


# What an AB import writes besides its records: analysed after it (annotator.importers.common.analyze).
IMPORTED_TABLES = (Batch, Hit, Worker, Assignment, HitPage, PageItem, PageSubmission, Event)


def import_imagenet_ab(dataset, fileobj, source="", batch_name=None, on_images=None):
    """Attach a published ImageNet-AB tarball to `dataset` as an imported, approved batch (all or nothing).

    The tarball is read as a stream and written a chunk of XML files at a time; the page summaries are made from
    the stored records afterwards (a page's images lie in many files), so memory does not grow with the file."""
    with transaction.atomic():
        batch = _create_import_batch(dataset, TaskKind.IMAGENET, batch_name, ExportJob.Format.IMAGENET_AB, source)
        result = ImportResult(batch=batch)
        imported = _ImportedBatch(batch)
        try:
            for annotations in _chunks(imagenet_ab.read_tar(fileobj), IMPORT_CHUNK):
                _import_imagenet_chunk(dataset, annotations, imported, result)
                if on_images:
                    on_images(len(annotations))
        except imagenet_ab.MalformedAnnotation as error:
            raise ImportFailed(str(error)) from None
        result.page_summaries = _write_imagenet_pages(batch, imported.now)
    analyze(*IMPORTED_TABLES, ImageNetRecord)
    logger.info("imported %d ImageNet-AB records into batch %s", result.records, batch.name)
    return result


def _import_imagenet_chunk(dataset, annotations, imported, result):
    images = {
        key: (pk, label_id) for key, pk, label_id in
        Image.objects.filter(dataset=dataset, key__in=[a.stem for a in annotations])
        .values_list("key", "pk", "label_id")
    }
    matched = []
    for annotation in annotations:
        if annotation.stem not in images:
            result.note_unmatched(annotation.stem, len(annotation.sessions))
            continue
        image_pk, label_id = images[annotation.stem]
        matched += [(image_pk, label_id, record) for record in annotation.sessions]
    assignments, pages = imported.place([
        # ImageNet-AB does not name a page's class: the label of the first image seen on it stands for it.
        _Session(record.assignment_id, record.worker_id, record.assignment_id, record.page_idx, category_id=label_id)
        for _, label_id, record in matched
    ])
    rows = [{
        "assignment": assignments[record.assignment_id, record.worker_id],
        "page": pages[record.assignment_id, record.page_idx][0], "image": image_pk,
        "selected": record.selected, "selected_record": record.selectedRecord,
        "deselected_record": record.deselectedRecord, "hovered_record": record.hoveredRecord,
        "mouse_tracking": record.mouseTracking, "image_position": record.imagePosition,
        "image_width": record.imageWidth, "image_height": record.imageHeight,
    } for image_pk, _, record in matched]
    result.records += len(_insert_new_records(ImageNetRecord, rows, ("assignment", "page", "image"), result))


def _write_imagenet_pages(batch, now):
    """The page rows of every imported (assignment, page), read back from the stored records a page at a time.

    The summary counts what the worker path's page save counts (luab.summaries.imagenet_page_summary) over
    the page's records: ImageNet-AB only has records of the images that left a byproduct, so n_in_class counts
    the in-class images with a record. It carries no page time either: time_spent_ms is the span of the page's
    recorded events (first to last hover, click or mouse sample), marked in `client`. The PageItems are the
    images the records show, in page order (imagePosition y, then x), in-class when of the page's class.
    """
    records = (
        ImageNetRecord.objects.filter(page__hit__batch=batch).order_by("page_id", "pk")
        .values_list("page_id", "page__index", "page__hit_id", "page__category_id", "assignment_id", "image_id",
                     "image__label_id", "selected", "selected_record", "deselected_record", "hovered_record",
                     "mouse_tracking", "image_position")
        .iterator(chunk_size=IMPORT_CHUNK)
    )
    rows = _PageRows(now)
    client = {"imported": True, "time_spent": "span of the page's recorded events"}
    for page_id, page_records in itertools.groupby(records, key=lambda record: record[0]):
        sessions, shown = {}, {}
        for (_, page_index, hit_id, category_id, assignment_id, image_id, label_id, selected, *series,
             position) in page_records:
            in_class = label_id is not None and label_id == category_id
            session = sessions.setdefault(assignment_id, {
                "page_index": page_index, "hit_id": hit_id, "times": [], "images": [],
            })
            session["images"].append((selected, in_class))
            times = [event["time"] for events in series for event in events
                     if isinstance(event.get("time"), (int, float))]
            if times:
                session["times"] = [min(times + session["times"][:1]), max(times + session["times"][1:])]
            position = position or {}
            shown.setdefault(image_id, (position.get("y", 0), position.get("x", 0), in_class))
        for assignment_id, session in sessions.items():
            rows.add_page(assignment_id, page_id, session["page_index"], session["hit_id"],
                          _span_ms(session["times"]), client, imagenet_page_summary(session["images"]))
        ordered = sorted(shown.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
        for position, (image_id, (_, _, in_class)) in enumerate(ordered):
            rows.add_item(page_id, image_id, position, in_class)
    return rows.flush()


def _span_ms(times):
    """Milliseconds from the first to the last event time; times in epoch seconds (as in seed 000, Figure A) are
    read as seconds."""
    if not times:
        return 0
    first, last = times
    return round((last - first) * (1000 if last < EPOCH_MS_FLOOR else 1))


def import_coco_ab(dataset, fileobj, source="", batch_name=None, on_records=None):
    """Attach a published COCO-AB JSON list (a text file, read as a stream) to `dataset` as an imported, approved
    batch (all or nothing), a chunk of records at a time."""
    categories = dict(Category.objects.filter(dataset=dataset).values_list("name", "key"))
    known_keys = set(categories.values())
    with transaction.atomic():
        batch = _create_import_batch(dataset, TaskKind.COCO, batch_name, ExportJob.Format.COCO_AB, source)
        result = ImportResult(batch=batch)
        imported = _ImportedBatch(batch)
        pages = _PageRows(imported.now)
        try:
            parsed = coco_ab.read_json_list(fileobj)
            for chunk_start, chunk in zip(itertools.count(0, IMPORT_CHUNK), _chunks(parsed, IMPORT_CHUNK)):
                _import_coco_chunk(dataset, chunk_start, chunk, imported, pages, result, categories, known_keys)
                if on_records:
                    on_records(len(chunk))
        except coco_ab.MalformedCocoAb as error:
            raise ImportFailed(str(error)) from None
        result.page_summaries = pages.flush()
    analyze(*IMPORTED_TABLES, CocoRecord)
    logger.info("imported %d COCO-AB records into batch %s", result.records, batch.name)
    return result


def _import_coco_chunk(dataset, chunk_start, chunk, imported, pages, result, categories, known_keys):
    """Store the chunk's records with their replayed final positions, and their pages' summaries and events
    (a COCO-style page is one record)."""
    images = {
        key: (pk, width, height) for key, pk, width, height in
        Image.objects.filter(dataset=dataset, key__in=[str(r.image_id) for r in chunk])
        .values_list("key", "pk", "width", "height")
    }
    matched = []
    for number, record in enumerate(chunk, start=chunk_start):
        image = images.get(str(record.image_id))
        if image is None:
            result.note_unmatched(str(record.image_id), 1)
            continue
        actions = [
            _imported_action(action, categories, known_keys, f"record {number} actionHistories[{index}]")
            for index, action in enumerate(record.actionHistories)
        ]
        matched.append((record, image, actions))
    assignments, placed_pages = imported.place([
        _Session(record.hit_key, record.worker_id, record.assignment_id or "", record.page_index, image_id=image[0])
        for record, image, _ in matched
    ])
    rows = [{
        "assignment": assignments[record.hit_key, record.worker_id],
        "page": placed_pages[record.hit_key, record.page_index][0], "image": image[0],
        "image_width": record.imageWidth, "image_height": record.imageHeight, "time_spent": record.timeSpent,
        "action_histories": actions, "category_histories": record.categoryHistories,
        "mouse_tracking": record.mouseTracking, "final_positions": replay_actions(actions, strict=False),
    } for record, image, actions in matched]
    fresh = _insert_new_records(CocoRecord, rows, ("assignment", "page"), result)
    result.records += len(fresh)
    objects = {}
    for image_id, *ground_truth in GroundTruthObject.objects.filter(
        image_id__in={row["image"] for row in fresh}
    ).values_list("image_id", "category__key", "bbox", "segmentation"):
        objects.setdefault(image_id, []).append(ground_truth)
    sizes = {pk: (width, height) for pk, width, height in images.values()}
    hits = {page_id: hit_id for page_id, hit_id in placed_pages.values()}
    indexes = {page_id: page_index for (_, page_index), (page_id, _) in placed_pages.items()}
    for row in fresh:
        summary = coco_page_summary(objects.get(row["image"], ()), *sizes[row["image"]], row["final_positions"])
        pages.add_page(row["assignment"], row["page"], indexes[row["page"]], hits[row["page"]], row["time_spent"],
                       {"imported": True}, summary)


def _imported_action(action, categories, known_keys, where):
    """A published action in our stored form: iconType as the category key (published files carry names)."""
    key = categories.get(action.iconType, action.iconType)
    if key not in known_keys:
        raise ImportFailed(f"{where}: iconType {action.iconType!r} is not a category of this dataset")
    point_from, point_to = (msgspec.to_builtins(point or None) for point in (action.pointFrom, action.pointTo))
    return action_dict(action.actionType, key, point_from, point_to, action.timeAt)


def _insert_new_records(model, rows, key_fields, result):
    """insert_rows for the rows whose unique key (key_fields) is free; a row repeating one of the file or of the
    batch is counted as a duplicate, not written. Returns the rows written."""
    unique = {}
    for row in rows:
        key = tuple(row[name] for name in key_fields)
        if key in unique:
            result.duplicate_records += 1
        unique[key] = row
    existing = set(
        model.objects.filter(assignment_id__in={row["assignment"] for row in rows},
                             page_id__in={row["page"] for row in rows}).values_list(*key_fields)
    )
    fresh = [row for key, row in unique.items() if key not in existing]
    result.duplicate_records += len(unique) - len(fresh)
    if fresh:
        insert_rows(model, fresh)
    return fresh
