"""Request bodies of the worker API as msgspec Structs (the hot path: parsed in C, no DRF serializer).

The records a page save carries are luab.records' types; the envelopes and the flushed events are the API's own.
The types catch shape errors; annotator.worker.validation checks what types cannot (ranges, order, consistency
with the page).
"""
import uuid
from typing import Annotated, Generic, Literal, TypeVar, Union

import msgspec
from msgspec import Meta

from luab.records import (
    CategoryVisit, CocoRecord, Decoded, Hover, IconAction, ImageNetRecord, Number, PageTimedPoint, TimedPoint, Toggle,
)

MAX_EVENTS_PER_FLUSH = 5_000
MAX_CLIENT_CHANGES = 10_000
MAX_RECORDS = 1_000


class Viewport(Decoded):
    w: Number
    h: Number


class ScrollPosition(Decoded):
    x: Number
    y: Number
    time: Number


class VisibilityChange(Decoded):
    state: Literal["visible", "hidden"]
    time: Number


class ClientInfo(Decoded):
    viewport: Union[Viewport, None] = None
    dpr: Union[Number, None] = None
    user_agent: Annotated[str, Meta(max_length=2_000)] = ""
    variant: Annotated[str, Meta(max_length=32)] = ""
    scroll: Annotated[list[ScrollPosition], Meta(max_length=MAX_CLIENT_CHANGES)] = []
    visibility: Annotated[list[VisibilityChange], Meta(max_length=MAX_CLIENT_CHANGES)] = []


RecordT = TypeVar("RecordT")


class PageSave(Decoded, Generic[RecordT]):
    save_id: uuid.UUID
    started_at: Number
    time_spent: Number
    records: Annotated[list[RecordT], Meta(max_length=MAX_RECORDS)]
    # Kept raw: stored as sent (extra fields included) and decoded into ClientInfo on its own, so the page's
    # body is parsed once.
    client: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


ImageNetPageSave = PageSave[ImageNetRecord]
CocoPageSave = PageSave[CocoRecord]


# Events flushed while a page is open: a union tagged by "type"; each is a record's sample, ImageNet-style ones
# naming their image.
class ClickEvent(Toggle, tag="click", tag_field="type"):
    """A toggle of an image: by mouse with its point, or by keyboard (usingKeyboard, no point)."""

    image_id: str
    selected: bool


class HoverEvent(Hover, tag="hover", tag_field="type"):
    image_id: str


class MoveEvent(TimedPoint, tag="move", tag_field="type"):
    image_id: str


class ActionEvent(IconAction, tag="action", tag_field="type"):
    pass


class CategoryEvent(CategoryVisit, tag="category", tag_field="type"):
    pass


class TrackEvent(PageTimedPoint, tag="track", tag_field="type"):
    pass


class ScrollEvent(ScrollPosition, tag="scroll", tag_field="type"):
    pass


class VisibilityEvent(VisibilityChange, tag="visibility", tag_field="type"):
    pass


PageEvent = Union[
    ClickEvent, HoverEvent, MoveEvent, ActionEvent, CategoryEvent, TrackEvent, ScrollEvent, VisibilityEvent
]


class EventBatchIn(Decoded):
    batch_id: uuid.UUID
    seq: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    sent_at: Number
    events: Annotated[list[PageEvent], Meta(max_length=MAX_EVENTS_PER_FLUSH)]


class SubmitIn(Decoded):
    """partial: the worker chose to hand in before the last page was saved (review judges the missing pages)."""

    partial: bool = False


class ResumeIn(Decoded):
    """The entry ticket of a locked task page (annotator.worker.tokens.make_entry_ticket)."""

    entry: Annotated[str, Meta(max_length=4_000)]


class RawEventBatch(Decoded):
    """The same body's events as their JSON text: stored exactly as sent (after validation of the typed copy)."""

    events: msgspec.Raw
