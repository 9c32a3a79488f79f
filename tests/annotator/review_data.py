"""Submitted assignments with PageSubmission summaries, built directly (not through the worker API)."""
import uuid

from django.utils import timezone

from annotator.models import Assignment, Batch, Hit, HitPage, PageSubmission, TaskKind
from tests import factories


def _spread(total, parts):
    """total split over parts as evenly as integers allow (earlier parts get the remainder)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def submitted_assignment(kind=TaskKind.IMAGENET, n_pages=10, completed=None, hit=None, batch=None, minutes=9,
                         **totals):
    """A submitted assignment whose first `completed` pages have summaries adding up to `totals`.

    The pages' measured times add up to `minutes`. Without hit, a new published HIT of n_pages is made (in batch,
    or in a new batch).
    ImageNet-style totals: n_selected, n_in_class, n_in_class_selected. COCO-style: n_gt_categories,
    n_tagged_correct, n_icons, n_icons_on_mask (spread over the pages).
    """
    if hit is None:
        batch = batch or factories.BatchFactory(
            dataset=factories.DatasetFactory(kind=kind), status=Batch.Status.PUBLISHED, pages_per_hit=n_pages
        )
        hit = factories.HitFactory(batch=batch, status=Hit.Status.PUBLISHED, published_at=timezone.now())
        HitPage.objects.bulk_create(HitPage(hit=hit, index=i) for i in range(n_pages))
    pages = list(hit.pages.order_by("index"))
    completed = len(pages) if completed is None else completed
    now = timezone.now()
    assignment = factories.AssignmentFactory(
        hit=hit, state=Assignment.State.SUBMITTED, submitted_at=now, completion_code="",
    )
    Assignment.objects.filter(pk=assignment.pk).update(accepted_at=now - timezone.timedelta(minutes=minutes))
    assignment.refresh_from_db()
    if completed:
        spread = {name: _spread(value, completed) for name, value in totals.items()}
        PageSubmission.objects.bulk_create(
            PageSubmission(
                assignment=assignment, page=page, client_save_id=uuid.uuid4(),
                time_spent_ms=round(minutes * 60_000) // completed,
                **{name: values[i] for name, values in spread.items()},
            )
            for i, page in enumerate(pages[:completed])
        )
    return assignment


def good_imagenet(**kwargs):
    return submitted_assignment(n_selected=400, n_in_class=360, n_in_class_selected=340, **kwargs)


def spam_imagenet(**kwargs):
    return submitted_assignment(n_selected=12, n_in_class=360, n_in_class_selected=9, **kwargs)
