"""Reads for exports and the report: the records of a batch, flat and in the order each format needs."""
from django.db.models import OuterRef, Subquery

from annotator.models import Assignment, CocoRecord, GroundTruthObject, ImageNetRecord, PageSubmission

IMAGENET_RECORD_FIELDS = (
    "id", "selected", "selected_record", "deselected_record", "hovered_record", "mouse_tracking",
    "image_position", "image_width", "image_height",
    "image_id", "image__key", "image__width", "image__height", "image__label__key",
    "page__index", "page__category__key",
    "assignment__uuid", "assignment__external_id", "assignment__state", "assignment__interface_variant",
    "assignment__worker__hashed_id", "assignment__hit__index", "assignment__hit__external_id",
)
COCO_RECORD_FIELDS = (
    "id", "image_width", "image_height", "time_spent", "action_histories", "category_histories",
    "mouse_tracking", "final_positions",
    "image_id", "image__key", "image__width", "image__height",
    "page__index",
    "assignment__uuid", "assignment__external_id", "assignment__state", "assignment__interface_variant",
    "assignment__worker__hashed_id", "assignment__hit__index", "assignment__hit__external_id",
)


def _exported_states(include_rejected):
    """Approved work only, unless asked for the rest too (then each record carries its assignment state)."""
    if include_rejected:
        return None
    return [Assignment.State.APPROVED]


def _batch_records(model, batch, include_rejected):
    records = model.objects.filter(assignment__hit__batch=batch)
    states = _exported_states(include_rejected)
    if states is not None:
        records = records.filter(assignment__state__in=states)
    return records


def imagenet_records(batch, include_rejected=False, with_client=False):
    """ImageNetRecord rows as dicts, ordered by image so that one image's sessions come together."""
    records = _batch_records(ImageNetRecord, batch, include_rejected)
    fields = IMAGENET_RECORD_FIELDS
    if with_client:
        records = records.annotate(**_page_submission_columns())
        fields += tuple(_page_submission_columns())
    return records.order_by("image_id", "assignment_id", "page_id").values(*fields)


def coco_records(batch, include_rejected=False, with_client=False):
    """CocoRecord rows as dicts, in HIT, worker and page order (the order the work was done in)."""
    records = _batch_records(CocoRecord, batch, include_rejected)
    fields = COCO_RECORD_FIELDS
    if with_client:
        records = records.annotate(**_page_submission_columns())
        fields += tuple(_page_submission_columns())
    return records.order_by("assignment__hit__index", "assignment_id", "page__index").values(*fields)


def _page_submission_columns():
    submission = PageSubmission.objects.filter(assignment=OuterRef("assignment"), page=OuterRef("page"))
    return {
        "page_client": Subquery(submission.values("client")[:1]),
        "page_time_spent_ms": Subquery(submission.values("time_spent_ms")[:1]),
        "page_saved_at": Subquery(submission.values("saved_at")[:1]),
    }


def objects_by_image(image_ids):
    """{image id: [(category key, bbox [x, y, w, h]), ...]} for the ground-truth objects of these images."""
    objects = {}
    rows = (
        GroundTruthObject.objects.filter(image_id__in=image_ids)
        .order_by("image_id", "id")
        .values_list("image_id", "category__key", "bbox")
    )
    for image_id, category_key, bbox in rows:
        objects.setdefault(image_id, []).append((category_key, bbox))
    return objects
