"""The byproduct records as msgspec Structs: one set of types for what a worker leaves on a page.

Field names follow the published record formats (ImageNet-AB, COCO-AB), hence the camelCase. The worker API
decodes page saves into these types (parsed in C, no DRF serializer), bounding each list as every request is;
a published COCO-AB record is the same record with integer sizes, unbounded lists and who made it where.
In these types `selectedRecord` holds the selecting clicks only (as stored); ImageNet-AB's element of that name
lists all clicks in time order (luab.imagenet_ab splits and merges them).
JSON has no NaN or Infinity and msgspec refuses numbers that overflow, so every number here is finite.
"""
from typing import Annotated, Literal, Union

from msgspec import UNSET, Meta, Struct, UnsetType

Number = Union[int, float]

MAX_TRACKING_SAMPLES = 10_000
MAX_CLICKS = 1_000
MAX_HOVERS = 1_000
MAX_ACTIONS = 1_000
MAX_CATEGORY_VISITS = 1_000


class Decoded(Struct, gc=False):
    """Base of the types decoded from JSON (records, request bodies). Decoded JSON holds no reference cycles, so the
    garbage collector need not track the thousands of small objects one page save decodes to (collections then ran
    every few requests)."""


class Point(Decoded):
    x: Number
    y: Number


class TimedPoint(Decoded):
    """A point with an epoch-ms time (ImageNet-style)."""

    x: Number
    y: Number
    time: Number


class Toggle(Decoded, kw_only=True, omit_defaults=True):
    """A selecting or deselecting toggle of an image: a click, with the point it landed on (fractions), or a key
    press (Space / Enter on the focused image: usingKeyboard true and no point, since the worker pointed at
    nothing and a made-up point would pass for a click location)."""

    x: Union[Number, UnsetType] = UNSET
    y: Union[Number, UnsetType] = UNSET
    time: Number
    usingKeyboard: bool = False


class PageTimedPoint(Decoded):
    """A point with a time in ms since the page was shown (COCO-style)."""

    x: Number
    y: Number
    timeAt: Number


class Hover(Decoded):
    action: Literal["enter", "leave"]
    time: Number


class IconAction(Decoded):
    """add: pointFrom null, pointTo set; move: both set; remove: pointFrom set, pointTo absent (luab.actions)."""

    actionType: Literal["add", "move", "remove"]
    iconType: str
    timeAt: Number
    pointFrom: Union[Point, None] = None
    pointTo: Union[Point, None, UnsetType] = UNSET
    # Placed with the keyboard (the point is still the worker's choice); left out for pointer actions.
    usingKeyboard: Union[bool, UnsetType] = UNSET


class CategoryVisit(Decoded):
    categoryIndex: int
    timeAt: Number
    categoryName: str = ""
    usingKeyboard: bool = False


class ImageNetRecord(Decoded):
    """One image of an ImageNet-style page; selectedRecord: the selecting clicks, deselectedRecord the others."""

    imageID: str
    selected: bool
    imagePosition: Point
    imageWidth: Number
    imageHeight: Number
    selectedRecord: Annotated[list[Toggle], Meta(max_length=MAX_CLICKS)] = []
    deselectedRecord: Annotated[list[Toggle], Meta(max_length=MAX_CLICKS)] = []
    hoveredRecord: Annotated[list[Hover], Meta(max_length=MAX_HOVERS)] = []
    mouseTracking: Annotated[list[TimedPoint], Meta(max_length=MAX_TRACKING_SAMPLES)] = []


class CocoRecord(Decoded, kw_only=True):
    """The one image of a COCO-style page: the icon actions, the category groups browsed, the pointer (fields in
    the published order)."""

    image_id: Union[str, int]
    imageWidth: Number
    imageHeight: Number
    actionHistories: Annotated[list[IconAction], Meta(max_length=MAX_ACTIONS)] = []
    categoryHistories: Annotated[list[CategoryVisit], Meta(max_length=MAX_CATEGORY_VISITS)] = []
    mouseTracking: Annotated[list[PageTimedPoint], Meta(max_length=MAX_TRACKING_SAMPLES)] = []
    timeSpent: Number


class PublishedImageNetRecord(ImageNetRecord, kw_only=True):
    """An ImageNet-AB `metadata` element as read (luab.imagenet_ab): the record and the session it belongs to."""

    worker_id: str
    assignment_id: str
    page_idx: int


class PublishedCocoRecord(CocoRecord, kw_only=True):
    """A published COCO-AB record: sizes and times are integers, the lists unbounded (a released file is not a
    request), and the session it belongs to; hit_id/page_id may be given as assignment_id/page_idx instead."""

    imageWidth: int
    imageHeight: int
    timeSpent: int
    actionHistories: list[IconAction]
    categoryHistories: list[CategoryVisit] = []
    mouseTracking: list[PageTimedPoint] = []
    worker_id: str
    hit_id: Union[str, None] = None
    assignment_id: Union[str, None] = None
    page_id: Union[int, None] = None
    page_idx: Union[int, None] = None

    @property
    def hit_key(self):
        return self.hit_id or self.assignment_id

    @property
    def page_index(self):
        return self.page_id if self.page_id is not None else self.page_idx
