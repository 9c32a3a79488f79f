"""Reads for review: work summaries for the rules, batch dashboards, assignment playbacks, worker histories."""
import statistics
from decimal import Decimal

from django.db.models import Avg, Count, F, FloatField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Cast, Coalesce, NullIf

from .. import events, files
from ..models import Assignment, Batch, Event, Hit, HitPage, PageSubmission, TaskKind
from ..rules import WorkSummary
from ..worker.icons import icon_url



def work_summaries(assignment_ids):
    """{assignment id: WorkSummary} from the PageSubmission summaries, in one query."""
    rows = (
        PageSubmission.objects.filter(assignment_id__in=assignment_ids)
        .values("assignment_id")
        .annotate(
            pages_completed=Count("id"),
            n_selected=Sum("n_selected"),
            n_in_class=Sum("n_in_class"),
            n_in_class_selected=Sum("n_in_class_selected"),
            mean_category_recall=Avg(
                Cast("n_tagged_correct", FloatField()) / NullIf(Cast("n_gt_categories", FloatField()), 0.0)
            ),
            n_icons=Sum("n_icons"),
            n_icons_on_mask=Sum("n_icons_on_mask"),
        )
    )
    summaries = {assignment_id: WorkSummary() for assignment_id in assignment_ids}
    for row in rows:
        assignment_id = row.pop("assignment_id")
        summaries[assignment_id] = WorkSummary(**row)
    return summaries


def claimed_completion_codes(assignment_ids):
    """{assignment id: the completion code the worker gave the market}, from the latest market sync events."""
    codes = {}
    synced = Event.objects.filter(assignment_id__in=assignment_ids, type=Event.Type.SYNCED).order_by("id")
    for event in synced.only("assignment_id", "data"):
        report = events.market_record(event)
        if report.claimed_completion_code:
            codes[event.assignment_id] = report.claimed_completion_code
    return codes


def market_states(assignment_ids):
    """{assignment id: what its market last said of it}: the status a sync or webhook brought ("AWAITING REVIEW"), the
    decision the market took ("approved: on the market"), or a refusal with the market's reason. Link batches have
    none (their decisions leave as a CSV)."""
    states = {}
    reports = (Event.objects.filter(assignment_id__in=assignment_ids,
                                    type__in=(Event.Type.SYNCED, Event.Type.MARKET_CALL)).order_by("created_at", "id"))
    for event in reports.only("assignment_id", "data"):
        report = events.market_record(event)
        if report.refused:
            states[event.assignment_id] = f"{report.operation or 'call'} refused: {report.refused}"
        elif report.market_decision:
            states[event.assignment_id] = f"{report.market_decision}: on the market"
        elif report.market_status:
            states[event.assignment_id] = report.market_status
    return states


def with_page_count(assignments):
    """Annotate each assignment with its HIT's number of pages (n_pages), in the same query."""
    pages = HitPage.objects.filter(hit_id=OuterRef("hit_id")).order_by().values("hit_id").annotate(n=Count("id"))
    return assignments.annotate(n_pages=Subquery(pages.values("n")))


def assignments_to_review(batch):
    """The batch's submitted and decided assignments, oldest first."""
    return with_page_count(
        Assignment.objects.filter(hit__batch=batch, state__in=Assignment.FINISHED_STATES)
        .select_related("hit__batch", "worker")
        .order_by("submitted_at", "id")
    )


def batch_assignments(batch, state=""):
    """The batch's assignments for the console table, newest submissions first; state filters when given."""
    assignments = with_working_ms(Assignment.objects.filter(hit__batch=batch).select_related("hit", "worker"))
    if state:
        assignments = assignments.filter(state=state)
    return assignments.order_by(F("submitted_at").desc(nulls_last=True), "-id")


def with_working_ms(assignments):
    """Annotate each assignment with working_ms: the time its pages measured, from each page shown to its save.

    The one measure of working time: the dashboard's time per HIT, wage and the byproduct report all read it.
    """
    pages = working_ms_by_assignment(PageSubmission.objects.filter(assignment_id=OuterRef("pk")))
    return assignments.annotate(working_ms=Subquery(pages.values("working_ms")))


def working_ms_by_assignment(page_submissions):
    """Rows of assignment_id and working_ms (the sum of its pages' time_spent_ms), grouped in the database."""
    return page_submissions.order_by().values("assignment_id").annotate(working_ms=Sum("time_spent_ms"))


def median_minutes_per_hit(assignments):
    """Median working minutes over the assignments that saved at least one page (None without any), found by the
    database from their page summaries grouped (a sort and one or two rows read), not by loading every finished
    assignment nor by a subquery per assignment."""
    # Pages that measured no time add nothing to a sum (time_spent_ms is never negative): left out before grouping,
    # they leave the assignments with working_ms > 0 and their sums.
    measured = PageSubmission.objects.filter(assignment__in=assignments, time_spent_ms__gt=0)
    n = measured.aggregate(n=Count("assignment_id", distinct=True))["n"]
    if not n:
        return None
    working = working_ms_by_assignment(measured).order_by("working_ms").values_list("working_ms", flat=True)
    return statistics.mean(working[(n - 1) // 2:n // 2 + 1]) / 60_000


def batch_dashboard(batch):
    """Progress, decision rates, time, wage and cost of one batch, each an aggregate the database computes: the
    queries are the same, and return as many rows, whatever the batch's size."""
    hits = Hit.objects.filter(batch=batch).aggregate(
        total=Count("id"), completed=Count("id", filter=Q(status=Hit.Status.COMPLETED))
    )
    states = (Assignment.objects.filter(hit__batch=batch).values("state").order_by()
              .annotate(n=Count("id"), bonuses=Coalesce(Sum("bonus_paid"), Decimal("0"))))
    by_state = {row["state"]: row["n"] for row in states}
    bonuses = sum((row["bonuses"] for row in states), Decimal("0"))
    approved = by_state.get(Assignment.State.APPROVED, 0)
    rejected = by_state.get(Assignment.State.REJECTED, 0)
    decided = approved + rejected
    median_minutes = median_minutes_per_hit(
        Assignment.objects.filter(hit__batch=batch, state__in=Assignment.FINISHED_STATES))
    hourly_wage = (
        (batch.reward * 60 / Decimal(str(median_minutes))).quantize(Decimal("0.01")) if median_minutes else None
    )
    paid_to_workers = batch.reward * approved + bonuses
    fee = (paid_to_workers * batch.market_fee_rate).quantize(Decimal("0.01"))
    return {
        "hits_total": hits["total"],
        "hits_completed": hits["completed"],
        "progress": hits["completed"] / hits["total"] if hits["total"] else 0.0,
        "by_state": {state.label: by_state.get(state.value, 0) for state in Assignment.State},
        "assignments_by_state": by_state,
        "submitted": by_state.get(Assignment.State.SUBMITTED, 0),
        "approved": approved,
        "rejected": rejected,
        "approval_rate": approved / decided if decided else None,
        "rejection_rate": rejected / decided if decided else None,
        "approval_percent": 100 * approved / decided if decided else None,
        "rejection_percent": 100 * rejected / decided if decided else None,
        "median_minutes_per_hit": median_minutes,
        "hourly_wage": hourly_wage,
        "wage_below_minimum": hourly_wage is not None and hourly_wage < batch.min_hourly_wage,
        "paid_to_workers": paid_to_workers,
        "bonuses": bonuses,
        "market_fee": fee,
        "market_fee_percent": batch.market_fee_rate * 100,
        "total_cost": paid_to_workers + fee,
    }


def batches_overview():
    return Batch.objects.select_related("dataset").annotate(
        n_hits=Count("hits", distinct=True),
        n_completed=Count("hits", filter=Q(hits__status=Hit.Status.COMPLETED), distinct=True),
    ).order_by("-created_at")


def file_url(field_file):
    return files.url(field_file.name) if field_file else ""


def _image_url(image):
    return file_url(image.display_file) or file_url(image.file)


def assignment_playback(assignment):
    """Everything the playback canvas draws, as plain JSON-able data (rendered with json_script, so escaped)."""
    kind = assignment.hit.batch.task_kind
    pages = list(assignment.hit.pages.select_related("category", "image").order_by("index"))
    submissions = {s.page_id: s for s in assignment.page_submissions.all()}
    playback_pages = []
    categories = {}  # COCO-style: the icons' names and pictures by category key
    if kind == TaskKind.IMAGENET:
        records = {}
        for record in assignment.imagenet_records.select_related("image"):
            records[(record.page_id, record.image_id)] = record
        for page in pages:
            items = []
            for item in page.items.select_related("image").order_by("position"):
                record = records.get((page.id, item.image_id))
                items.append({
                    "image_key": item.image.key,
                    "url": _image_url(item.image),
                    "in_class": item.in_class,
                    "is_gold": item.is_gold,
                    "selected": record.selected if record else None,
                    "selected_record": record.selected_record if record else [],
                    "deselected_record": record.deselected_record if record else [],
                    "hovered_record": record.hovered_record if record else [],
                    "mouse_tracking": record.mouse_tracking if record else [],
                })
            playback_pages.append(_page_header(page, submissions) | {
                "category": page.category.name if page.category else "", "items": items,
            })
    else:
        categories = {
            category.key: {"name": category.name, "icon": icon_url(category)}
            for category in assignment.hit.batch.dataset.categories.only("pk", "key", "name")
        }
        records = {record.page_id: record for record in assignment.coco_records.all()}
        for page in pages:
            record = records.get(page.id)
            playback_pages.append(_page_header(page, submissions) | {
                "image_key": page.image.key if page.image else "",
                "url": _image_url(page.image) if page.image else "",
                "action_histories": record.action_histories if record else [],
                "mouse_tracking": record.mouse_tracking if record else [],
                "final_positions": record.final_positions if record else {},
            })
    return {"kind": kind, "pages": playback_pages, "categories": categories}


def _page_header(page, submissions):
    submission = submissions.get(page.id)
    return {
        "index": page.index,
        "completed": submission is not None,
        "time_spent_ms": submission.time_spent_ms if submission else None,
    }


def assignment_events(assignment):
    return Event.objects.filter(assignment=assignment).select_related("actor").order_by("created_at", "id")


def worker_history(worker):
    assignments = (
        Assignment.objects.filter(worker=worker).select_related("hit__batch").order_by("-accepted_at", "-id")
    )
    counts = assignments.aggregate(
        total=Count("id"),
        approved=Count("id", filter=Q(state=Assignment.State.APPROVED)),
        rejected=Count("id", filter=Q(state=Assignment.State.REJECTED)),
        bonuses=Coalesce(Sum("bonus_paid"), Decimal("0")),
    )
    decided = counts["approved"] + counts["rejected"]
    return {
        "assignments": assignments,
        "counts": counts,
        "approval_rate": counts["approved"] / decided if decided else None,
        "rejection_rate": counts["rejected"] / decided if decided else None,
        "events": Event.objects.filter(worker=worker).select_related("actor").order_by("-created_at", "-id")[:50],
    }

