"""Reads for exports and the report: the records of a batch, flat and in the order each format needs.

Rows carry neutral names (image_key, page_index, worker_hashed_id ...: *_RECORD_FIELDS and *_RECORD_COLUMNS), not
the ORM's lookups, so that the format writers (luab) know nothing of the models.

JSON columns come as JSON text in `<name>_json` keys; `json_columns` turns them into values (msgspec decodes
several times faster than Django's per-field json.loads) or into msgspec.Raw, copied to the output untouched.
"""
from contextlib import contextmanager

import msgspec
from django.db import connection
from django.db.models import F, OuterRef, Subquery, TextField
from django.db.models.functions import Cast

from annotator.models import Assignment, CocoRecord, GroundTruthObject, ImageNetRecord, PageSubmission

IMAGENET_JSON_FIELDS = ("selected_record", "deselected_record", "hovered_record", "mouse_tracking", "image_position")
COCO_JSON_FIELDS = ("action_histories", "category_histories", "mouse_tracking", "final_positions")
# The rows' neutral names (what luab's writers read) and the lookups they come from.
_SHARED_COLUMNS = {
    "image_key": "image__key", "original_width": "image__width", "original_height": "image__height",
    "page_index": "page__index",
    "assignment_uuid": "assignment__uuid", "assignment_external_id": "assignment__external_id",
    "assignment_state": "assignment__state", "interface_variant": "assignment__interface_variant",
    "worker_hashed_id": "assignment__worker__hashed_id",
    "hit_index": "assignment__hit__index", "hit_external_id": "assignment__hit__external_id",
}
IMAGENET_RECORD_FIELDS = ("id", "selected", "image_width", "image_height", "image_id")
IMAGENET_RECORD_COLUMNS = {
    **_SHARED_COLUMNS, "image_label": "image__label__key", "page_category": "page__category__key",
}
COCO_RECORD_FIELDS = ("id", "image_width", "image_height", "time_spent", "image_id")
COCO_RECORD_COLUMNS = _SHARED_COLUMNS


@contextmanager
def planned_for_all_rows():
    """PostgreSQL plans server-side cursors to return their first 10% of rows fast (nested loops over indexes),
    which makes reading every row several times slower; exports and reports read every row."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET cursor_tuple_fraction = 1.0")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET cursor_tuple_fraction")


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


def _as_json_text(names):
    return {f"{name}_json": Cast(name, TextField()) for name in names}


def json_columns(rows, names, convert=msgspec.json.decode):
    """Replace each row's `<name>_json` text by convert(text) under `name` (None stays None)."""
    keys = [(f"{name}_json", name) for name in names]
    for row in rows:
        for text_key, name in keys:
            text = row.pop(text_key)
            row[name] = None if text is None else convert(text)
        yield row


def imagenet_records(batch, include_rejected=False, with_client=False):
    """ImageNetRecord rows as dicts, ordered by image so that one image's sessions come together.

    JSON columns: IMAGENET_JSON_FIELDS, plus "page_client" with_client."""
    return _records(ImageNetRecord, batch, include_rejected, with_client, ("image_id", "assignment_id", "page_id"),
                    IMAGENET_RECORD_FIELDS, IMAGENET_RECORD_COLUMNS, IMAGENET_JSON_FIELDS)


def coco_records(batch, include_rejected=False, with_client=False):
    """CocoRecord rows as dicts, in HIT, worker and page order (the order the work was done in).

    JSON columns: COCO_JSON_FIELDS, plus "page_client" with_client."""
    return _records(CocoRecord, batch, include_rejected, with_client,
                    ("assignment__hit__index", "assignment_id", "page__index"), COCO_RECORD_FIELDS, COCO_RECORD_COLUMNS,
                    COCO_JSON_FIELDS)


def _records(model, batch, include_rejected, with_client, order, fields, columns, json_fields):
    records = _batch_records(model, batch, include_rejected)
    if with_client:
        records = records.annotate(**_page_submission_columns())
    return records.order_by(*order).values(
        *fields, *(_PAGE_SUBMISSION_FIELDS if with_client else ()),
        **{name: F(lookup) for name, lookup in columns.items()}, **_as_json_text(json_fields),
    )


_PAGE_SUBMISSION_FIELDS = ("page_client_json", "page_time_spent_ms", "page_saved_at")


def _page_submission_columns():
    submission = PageSubmission.objects.filter(assignment=OuterRef("assignment"), page=OuterRef("page"))
    return {
        "page_client_json": Subquery(submission.annotate(text=Cast("client", TextField())).values("text")[:1]),
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
