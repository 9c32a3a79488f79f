"""Writes on the worker path: accept or resume, flush events, save a page, submit. One mechanism for both kinds.

Every write validates first and then writes inside one transaction, so a refused request leaves nothing behind;
client-generated ids (batch_id, save_id) and the models' unique constraints make every retry harmless.
"""
import contextlib
import logging
import time

import msgspec
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException, PermissionDenied

from annotator import events
from annotator.bulk import insert_rows
from annotator.models import (
    Assignment,
    Batch,
    CocoRecord,
    Event,
    EventBatch,
    GroundTruthObject,
    Hit,
    ImageNetRecord,
    PageSubmission,
    TaskKind,
    Worker,
)
from annotator.signals import assignment_submitted
from annotator.worker import schemas, selectors
from annotator.worker.tokens import completion_code
from annotator.worker.validation import (
    Problems,
    check_coco_record,
    check_events,
    check_imagenet_records,
    check_save_envelope,
    decode,
    refuse_bad_text,
)
from luab.summaries import coco_page_summary, imagenet_page_summary

logger = logging.getLogger(__name__)



class Conflict(APIException):
    status_code = 409
    default_code = "conflict"
    default_detail = "the request conflicts with what is already stored"


class TaskRefused(Exception):
    """The worker may not take this HIT; the entry page shows title and message with the HTTP status."""

    def __init__(self, title, message, status=403):
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


def now_ms():
    return int(time.time() * 1000)


def check_open_to_workers(batch):
    """A batch takes workers (and shows previews) only once published; TaskRefused otherwise."""
    if batch.status == Batch.Status.DRAFT:
        raise TaskRefused(
            "This task is not open yet", "This task has not been published yet. Please come back when it is.", 409
        )


class ResumeElsewhere(TaskRefused):
    """Work already started on this HIT, opened without its proof: it continues only in the browser that holds its
    token, or from the market's link to the same market assignment it was started with."""

    def __init__(self):
        super().__init__(
            "This task is open in another browser",
            "Your work on this task continues only in the browser where you started it, or from the market's own "
            "link to your assignment. Please go back to that browser, or open the task again from the market.",
            status=409,
        )


STATE_REFUSALS = {
    Assignment.State.EXPIRED: "The time for this task ran out before it was submitted, and its place went to "
                              "another worker; it cannot be taken again.",
    Assignment.State.RETURNED: "You returned this task; it cannot be taken again.",
}


def accept_assignment(hit, worker_external_id, assignment_external_id="", turk_submit_to="", entry_address=""):
    """Create the worker's assignment for this HIT, or resume the one they have (Event ACCEPTED / RESUMED).

    Work already started resumes only with the market's proof (the same non-empty market assignment id it was
    started with); else ResumeElsewhere, and the browser that holds its token resumes it (resume_in_browser).
    Assignments of the HIT past their deadline expire first (committed whatever the entry's outcome), so their
    places are free again. entry_address: the keyed hash of the client address (limits the open places one address
    may hold, WORKER_OPEN_PER_ADDRESS).
    """
    check_open_to_workers(hit.batch)
    expire_overdue(hit=hit)
    return _take_or_resume(hit, worker_external_id, assignment_external_id, turk_submit_to, entry_address)


@transaction.atomic
def _take_or_resume(hit, worker_external_id, assignment_external_id, turk_submit_to, entry_address):
    batch = hit.batch
    worker, _ = Worker.objects.get_or_create(provider=batch.provider, external_id=worker_external_id)
    if worker.blocked:
        raise TaskRefused("You cannot take this task", "Your worker account may no longer take these tasks.")
    # Lock the HIT so two workers cannot both take its last place.
    hit = Hit.objects.select_for_update().get(pk=hit.pk)
    existing = Assignment.objects.filter(hit=hit, worker=worker).first()
    if existing is not None:
        if existing.state in Assignment.ACTIVE_STATES:
            if not assignment_external_id or assignment_external_id != existing.external_id:
                logger.warning("assignment %s: entry without its market assignment id (got %r): not resumed here",
                               existing.pk, assignment_external_id[:100])
                raise ResumeElsewhere()
            return _resume(existing, assignment_external_id, turk_submit_to)
        raise TaskRefused(
            "You have already done this task",
            STATE_REFUSALS.get(
                existing.state, f"Your work on this task is {existing.get_state_display()}; it cannot be taken again."
            ),
            status=409,
        )
    if batch.status == Batch.Status.CLOSED or hit.status in (Hit.Status.EXPIRED, Hit.Status.COMPLETED):
        raise TaskRefused("This task is closed", "This task takes no more work. Thank you for your interest.", 409)
    if batch.max_hits_per_worker is not None:
        taken = (Assignment.objects.filter(hit__batch=batch, worker=worker)
                 .exclude(state__in=Assignment.RELEASED_STATES).count())
        if taken >= batch.max_hits_per_worker:
            raise TaskRefused(
                "You have reached the limit for these tasks",
                f"Each worker may do at most {batch.max_hits_per_worker} of these tasks; you have done {taken}.",
            )
    holders = hit.assignments.exclude(state__in=Assignment.RELEASED_STATES).count()
    if holders >= hit.max_assignments:
        raise TaskRefused("This task is taken", "Every place on this task is taken. Please choose another one.", 409)
    _check_open_places_of_address(entry_address)
    now = timezone.now()
    assignment = Assignment.objects.create(
        hit=hit, worker=worker, external_id=assignment_external_id, turk_submit_to=turk_submit_to,
        interface_variant=batch.interface_variant, deadline=now + batch.assignment_duration,
        entry_address=entry_address,
    )
    events.accepted(assignment=assignment).save()
    logger.info("assignment %s accepted on hit %s", assignment.pk, hit.pk)
    return assignment


def _check_open_places_of_address(entry_address):
    """Anyone can open task URLs with made-up worker ids, each taking a place: one client address holds at most
    WORKER_OPEN_PER_ADDRESS open (unsubmitted, not yet expired) assignments at a time."""
    limit = settings.WORKER_OPEN_PER_ADDRESS
    if not entry_address or limit is None:
        return
    held = Assignment.objects.filter(
        entry_address=entry_address, state__in=Assignment.OPEN_STATES, deadline__gt=timezone.now()
    ).count()
    if held >= limit:
        logger.warning("entry refused: address %s holds %d open assignments", entry_address[:8], held)
        raise TaskRefused(
            "Too many tasks open",
            f"{held} tasks taken from your network are still open. Please submit or return one of them first.",
            status=429,
        )


def expire_overdue(*, hit=None, assignment=None, limit=None):
    """Open assignments past their deadline become EXPIRED (Event EXPIRED), which frees their place on the HIT.

    Each row is locked and checked again (SKIP LOCKED: a submit in progress wins and is never undone). hit or
    assignment narrows it down; limit caps how many. Returns how many expired.
    """
    now = timezone.now()
    overdue = Assignment.objects.filter(state__in=Assignment.OPEN_STATES, deadline__lte=now)
    if hit is not None:
        overdue = overdue.filter(hit=hit)
    if assignment is not None:
        overdue = overdue.filter(pk=assignment.pk)
    with transaction.atomic():
        locked = list(
            overdue.select_for_update(of=("self",), skip_locked=True).order_by("deadline", "pk")
            .values_list("pk", "hit_id", "hit__batch_id", "worker_id", "state", "deadline")[:limit]
        )
        if not locked:
            return 0
        Assignment.objects.filter(pk__in=[row[0] for row in locked]).update(state=Assignment.State.EXPIRED)
        Event.objects.bulk_create([
            events.overdue(assignment_id=pk, hit_id=hit_id, batch_id=batch_id, worker_id=worker_id,
                           previous_state=state, deadline=deadline)
            for pk, hit_id, batch_id, worker_id, state, deadline in locked
        ])
    logger.info("%d assignments expired past their deadline", len(locked))
    return len(locked)


@transaction.atomic
def resume_in_browser(assignment, entry):
    """The browser that holds the assignment's token came back through the task URL and was handed an entry ticket
    (tokens.read_entry_ticket: the entry's HIT, worker and market ids). When it is the same HIT and worker, the work
    resumes (Event RESUMED) under this entry's market ids (submitted work keeps its own). Returns the assignment."""
    locked = (
        Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker").get(pk=assignment.pk)
    )
    same_entry = (
        locked.hit_id == entry["hit"] and locked.worker.provider == entry["provider"]
        and locked.worker.external_id == entry["worker"]
    )
    if not same_entry:
        raise PermissionDenied("the work this browser kept is not this worker's work on this task")
    if locked.state not in Assignment.ACTIVE_STATES:
        raise Conflict(f"assignment is {locked.state}; it cannot be resumed")
    return _resume(locked, entry["market_assignment_id"], entry["turk_submit_to"])


def _resume(assignment, assignment_external_id, turk_submit_to):
    changed = []
    if assignment.state not in Assignment.OPEN_STATES:
        # Submitted work stays with the market assignment it was submitted under: a second entry with another
        # assignmentId (a made-up one, a new study session) must not move the decision and pay onto that one.
        if assignment_external_id and assignment_external_id != assignment.external_id:
            logger.warning("assignment %s is %s: kept its market id, not %r", assignment.pk, assignment.state,
                           assignment_external_id[:100])
        assignment_external_id = turk_submit_to = ""
    if assignment_external_id and assignment.external_id != assignment_external_id:
        assignment.external_id = assignment_external_id
        changed.append("external_id")
    if turk_submit_to and assignment.turk_submit_to != turk_submit_to:
        assignment.turk_submit_to = turk_submit_to
        changed.append("turk_submit_to")
    if changed:
        assignment.save(update_fields=changed)
    events.resumed(assignment=assignment).save()
    return assignment


def _start_work(assignment):
    """ACCEPTED -> IN_PROGRESS on the first write; conditional, so it never undoes a concurrent submit."""
    if assignment.state == Assignment.State.ACCEPTED:
        assignment.transition(Assignment.State.IN_PROGRESS)
        Assignment.objects.filter(pk=assignment.pk, state=Assignment.State.ACCEPTED).update(state=assignment.state)


def record_event_flush(assignment, page, body):
    """Store one flush of raw events (an EventBatch row); the same batch_id again stores nothing. Returns (events stored, created).

    Also after submit, whatever review decided since (the page's last flush and pagehide beacons come after the
    submit, and the automatic decision often comes before them); a returned or expired assignment's token is
    refused before this (AssignmentTokenAuthentication)."""
    flush = decode(body, schemas.EventBatchIn)
    problems = Problems()
    kind = assignment.hit.batch.task_kind
    if kind == TaskKind.IMAGENET:
        check_events(problems, flush, now_ms(), image_keys=selectors.assignment_page_candidates(assignment, page))
    else:
        keys, n_groups = selectors.assignment_category_keys(assignment)
        check_events(problems, flush, now_ms(), category_keys=keys, n_groups=n_groups)
    problems.raise_if_any()
    # The events array's JSON text, stored as sent (the column is PostgreSQL json): never decoded into dicts.
    raw_events = msgspec.json.decode(body, type=schemas.RawEventBatch).events
    refuse_bad_text(raw_events, "events")
    # One statement, atomic by itself: no transaction around it (BEGIN and COMMIT would be two more round trips),
    # except a savepoint when the caller holds one open, so a duplicate leaves the outer transaction usable.
    try:
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            insert_rows(EventBatch, [{
                "assignment": assignment.pk, "page": page.pk, "client_batch_id": flush.batch_id, "seq": flush.seq,
                "events": raw_events, "client_sent_at": int(flush.sent_at), "received_at": timezone.now(),
            }])
    except IntegrityError:
        stored = EventBatch.objects.filter(assignment=assignment, client_batch_id=flush.batch_id).first()
        if stored is None:
            raise
        return len(stored.events), False
    _start_work(assignment)
    return len(flush.events), True


def _imagenet_rows(assignment, page, save, problems):
    """48 ImageNetRecord rows (for insert_rows) and the review summary (luab.summaries.imagenet_page_summary)."""
    candidates = selectors.assignment_page_candidates(assignment, page)
    check_imagenet_records(problems, save.records, page.index, candidates, now_ms())
    problems.raise_if_any()
    rows = [{
        "assignment": assignment.pk, "page": page.pk, "image": candidates[record.imageID][0],
        "selected": record.selected, "selected_record": record.selectedRecord,
        "deselected_record": record.deselectedRecord, "hovered_record": record.hoveredRecord,
        "mouse_tracking": record.mouseTracking, "image_position": record.imagePosition,
        "image_width": round(record.imageWidth), "image_height": round(record.imageHeight),
    } for record in save.records]
    # Every candidate has its record (check_imagenet_records), so the records count the page's in-class images.
    summary = imagenet_page_summary((record.selected, candidates[record.imageID][1]) for record in save.records)
    return rows, summary


def coco_summary(image, final_positions):
    """The page summary (luab.summaries.coco_page_summary) of an image's final icon positions against its ground
    truth, read from the database."""
    objects = GroundTruthObject.objects.filter(image=image).values_list("category__key", "bbox", "segmentation")
    return coco_page_summary(objects, image.width, image.height, final_positions)


def _coco_rows(assignment, page, save, problems):
    """One CocoRecord with the replayed final positions, and the review summary."""
    keys, n_groups = selectors.assignment_category_keys(assignment)
    image_id = selectors.page_image_id(page, assignment.hit.candidate_key)
    final_positions = check_coco_record(problems, save.records, page.index, image_id, keys, n_groups)
    problems.raise_if_any()
    record = save.records[0]
    row = {
        "assignment": assignment.pk, "page": page.pk, "image": page.image_id,
        "image_width": round(record.imageWidth), "image_height": round(record.imageHeight),
        "time_spent": round(record.timeSpent), "action_histories": record.actionHistories,
        "category_histories": record.categoryHistories, "mouse_tracking": record.mouseTracking,
        "final_positions": final_positions,
    }
    return [row], coco_summary(page.image, final_positions)


# What differs between the two task kinds: the body's record type and how records become rows and a summary.
PAGE_KINDS = {
    TaskKind.IMAGENET: (schemas.ImageNetPageSave, ImageNetRecord, _imagenet_rows),
    TaskKind.COCO: (schemas.CocoPageSave, CocoRecord, _coco_rows),
}


def save_page(assignment, page, body):
    """Validate and store a finished page: its records and its summary, all or nothing.

    Returns True when stored, False when this save_id was already stored for this page (a retry).
    Pages are saved in order; a page saved under another save_id is a conflict.
    """
    schema, record_model, build_rows = PAGE_KINDS[assignment.hit.batch.task_kind]
    save = decode(body, schema)
    problems = Problems()
    refuse_bad_text(save.client, "client")
    check_save_envelope(problems, save, decode(save.client, schemas.ClientInfo, path="client"), now_ms())
    problems.raise_if_any()
    rows, summary = build_rows(assignment, page, save, problems)
    try:
        with transaction.atomic():
            state, saved = selectors.locked_state_and_saved_pages(assignment)
            if not is_new_save(state, saved, page, save):
                return False
            insert_rows(PageSubmission, [{
                "assignment": assignment.pk, "page": page.pk, "client_save_id": save.save_id,
                "time_spent_ms": round(save.time_spent), "client": save.client, **summary,
            }])
            insert_rows(record_model, rows)
            insert_rows(Event, [events.page_saved_row(hit_id=assignment.hit_id, assignment_id=assignment.pk,
                                                      page=page.index, summary=summary, created_at=timezone.now())])
            assignment.state = state
            _start_work(assignment)
    except IntegrityError:
        # A save of this page (or with this save_id) committed while this one waited for the assignment's lock: the
        # locked read (PostgreSQL, READ COMMITTED) still saw the pages as they were. Answer from what is stored now.
        if is_new_save(*selectors.state_and_saved_pages(assignment), page, save):
            raise
        return False
    return True


def is_new_save(state, saved, page, save):
    """Whether `save` of `page` is to be stored, given the assignment's state and saved pages; False for a retry of
    the save already stored, Conflict (409) for one that does not fit."""
    if page.index in saved:
        if saved[page.index] == save.save_id:
            return False
        raise Conflict(f"page {page.index} is already saved by another save (save_id {saved[page.index]})")
    if save.save_id in saved.values():
        raise Conflict(f"save_id {save.save_id} was already used for another page")
    if state not in Assignment.OPEN_STATES:
        raise Conflict(f"assignment is {state}; pages can no longer be saved")
    unsaved = [index for index in range(page.index) if index not in saved]
    if unsaved:
        raise Conflict(f"pages are saved in order: save page {unsaved[0]} before page {page.index}")
    return True


def submit_assignment(assignment, partial=False):
    """Finish the assignment: state SUBMITTED, completion code, Event SUBMITTED, signal assignment_submitted.

    Every page must be saved, unless partial (the worker chose to hand in early; review judges what is missing).
    A second submit changes nothing. Returns (assignment, submitted now).
    """
    with transaction.atomic():
        locked = (
            Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker")
            .get(pk=assignment.pk)
        )
        if locked.state in Assignment.FINISHED_STATES:
            return locked, False
        if locked.state not in Assignment.OPEN_STATES:
            raise Conflict(f"assignment is {locked.state}; it can no longer be submitted")
        n_pages = selectors.page_count(locked.hit)
        saved = selectors.saved_pages(locked)
        if len(saved) < n_pages and not partial:
            next_page = next(index for index in range(n_pages) if index not in saved)
            raise Conflict(
                f"{len(saved)} of {n_pages} pages are saved: save page {next_page} first, "
                "or submit with partial=true to hand in what is saved"
            )
        locked.transition(Assignment.State.SUBMITTED)
        locked.submitted_at = timezone.now()
        locked.completion_code = completion_code(locked.uuid)
        locked.save(update_fields=["state", "submitted_at", "completion_code"])
        events.submitted(assignment=locked, pages_saved=len(saved), n_pages=n_pages).save()
        assignment_submitted.send(sender=Assignment, assignment=locked)
    logger.info("assignment %s submitted with %s of %s pages", locked.pk, len(saved), n_pages)
    return locked, True
