"""Request bodies of the worker API as msgspec Structs (the hot path: parsed in C, no DRF serializer).

Field names follow the published record formats (ImageNet-AB, COCO-AB), hence the camelCase. The types catch
shape errors; annotator.worker.validation checks what types cannot (ranges, order, consistency with the page).
JSON has no NaN or Infinity and msgspec refuses numbers that overflow, so every number here is finite.
"""
import uuid
from typing import Annotated, Generic, Literal, TypeVar, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Number = Union[int, float]

MAX_EVENTS_PER_BATCH = 5_000
MAX_TRACKING_SAMPLES = 10_000
MAX_CLICKS = 1_000
MAX_HOVERS = 1_000
MAX_ACTIONS = 1_000
MAX_CATEGORY_VISITS = 1_000
MAX_CLIENT_CHANGES = 10_000
MAX_RECORDS = 1_000



class Body(Struct, gc=False):
    """Base of the request body types. Decoded JSON holds no reference cycles, so the garbage collector need not
    track the thousands of small objects one page save decodes to (collections then ran every few requests)."""

class Point(Body):
    x: Number
    y: Number


class TimedPoint(Body):
    """A point with an epoch-ms time (ImageNet-style)."""

    x: Number
    y: Number
    time: Number


class Toggle(Body, kw_only=True, omit_defaults=True):
    """A selecting or deselecting toggle of an image: a click, with the point it landed on (fractions), or a key
    press (Space / Enter on the focused image: usingKeyboard true and no point, since the worker pointed at
    nothing and a made-up point would pass for a click location)."""

    x: Union[Number, UnsetType] = UNSET
    y: Union[Number, UnsetType] = UNSET
    time: Number
    usingKeyboard: bool = False


class PageTimedPoint(Body):
    """A point with a time in ms since the page was shown (COCO-style)."""

    x: Number
    y: Number
    timeAt: Number


class Hover(Body):
    action: Literal["enter", "leave"]
    time: Number


class Viewport(Body):
    w: Number
    h: Number


class ScrollPosition(Body):
    x: Number
    y: Number
    time: Number


class VisibilityChange(Body):
    state: Literal["visible", "hidden"]
    time: Number


class ClientInfo(Body):
    viewport: Union[Viewport, None] = None
    dpr: Union[Number, None] = None
    user_agent: Annotated[str, Meta(max_length=2_000)] = ""
    variant: Annotated[str, Meta(max_length=32)] = ""
    scroll: Annotated[list[ScrollPosition], Meta(max_length=MAX_CLIENT_CHANGES)] = []
    visibility: Annotated[list[VisibilityChange], Meta(max_length=MAX_CLIENT_CHANGES)] = []


class ImageNetRecordIn(Body):
    imageID: str
    selected: bool
    imagePosition: Point
    imageWidth: Number
    imageHeight: Number
    selectedRecord: Annotated[list[Toggle], Meta(max_length=MAX_CLICKS)] = []
    deselectedRecord: Annotated[list[Toggle], Meta(max_length=MAX_CLICKS)] = []
    hoveredRecord: Annotated[list[Hover], Meta(max_length=MAX_HOVERS)] = []
    mouseTracking: Annotated[list[TimedPoint], Meta(max_length=MAX_TRACKING_SAMPLES)] = []


class IconAction(Body):
    """add: pointFrom null, pointTo set; move: both set; remove: pointFrom set, pointTo absent."""

    actionType: Literal["add", "move", "remove"]
    iconType: str
    timeAt: Number
    pointFrom: Union[Point, None] = None
    pointTo: Union[Point, None, UnsetType] = UNSET
    # Placed with the keyboard (the point is still the worker's choice); left out for pointer actions.
    usingKeyboard: Union[bool, UnsetType] = UNSET


class CategoryVisit(Body):
    categoryIndex: int
    timeAt: Number
    categoryName: str = ""
    usingKeyboard: bool = False


class CocoRecordIn(Body):
    image_id: Union[str, int]
    imageWidth: Number
    imageHeight: Number
    timeSpent: Number
    actionHistories: Annotated[list[IconAction], Meta(max_length=MAX_ACTIONS)] = []
    categoryHistories: Annotated[list[CategoryVisit], Meta(max_length=MAX_CATEGORY_VISITS)] = []
    mouseTracking: Annotated[list[PageTimedPoint], Meta(max_length=MAX_TRACKING_SAMPLES)] = []


RecordT = TypeVar("RecordT")


class PageSave(Body, Generic[RecordT]):
    save_id: uuid.UUID
    started_at: Number
    time_spent: Number
    records: Annotated[list[RecordT], Meta(max_length=MAX_RECORDS)]
    # Kept raw: stored as sent (extra fields included) and decoded into ClientInfo on its own, so the page's
    # body is parsed once.
    client: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


ImageNetPageSave = PageSave[ImageNetRecordIn]
CocoPageSave = PageSave[CocoRecordIn]


# Events flushed while a page is open: a union tagged by "type".
class ClickEvent(Body, tag="click", tag_field="type", kw_only=True):
    """A toggle of an image: by mouse with its point, or by keyboard (usingKeyboard, no point), as in Toggle."""

    image_id: str
    x: Union[Number, UnsetType] = UNSET
    y: Union[Number, UnsetType] = UNSET
    time: Number
    selected: bool
    usingKeyboard: bool = False


class HoverEvent(Body, tag="hover", tag_field="type"):
    image_id: str
    action: Literal["enter", "leave"]
    time: Number


class MoveEvent(Body, tag="move", tag_field="type"):
    image_id: str
    x: Number
    y: Number
    time: Number


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


class EventBatchIn(Body):
    batch_id: uuid.UUID
    seq: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    sent_at: Number
    events: Annotated[list[PageEvent], Meta(max_length=MAX_EVENTS_PER_BATCH)]


class SubmitIn(Body):
    """partial: the worker chose to hand in before the last page was saved (review judges the missing pages)."""

    partial: bool = False


class ResumeIn(Body):
    """The entry ticket of a locked task page (annotator.worker.tokens.make_entry_ticket)."""

    entry: Annotated[str, Meta(max_length=4_000)]


class RawEventBatch(Body):
    """The same body's events as their JSON text: stored exactly as sent (after validation of the typed copy)."""

    events: msgspec.Raw

