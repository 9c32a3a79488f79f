"""What the schemas cannot check: ranges, time order, and consistency with the page the worker was shown.

Every problem is reported with its field path and why, e.g. "records[4].selectedRecord[1].x: 1.7 is outside
[0, 1]"; the caller raises them as one 400 and writes nothing.
"""
import re
from operator import attrgetter

import msgspec
import numpy as np
from msgspec import UNSET
from rest_framework.exceptions import ValidationError

from annotator.api.fields import nul_path
from annotator.worker import schemas
from luab.actions import ReplayError, replay_actions

DAY_MS = 24 * 3600 * 1000
MAX_DISPLAY_PX = 100_000
MAX_PAGE_PX = 1_000_000
# The schemas nest 4 levels; extra fields are stored as sent, so their depth is bounded too: reads of a stored
# body (json, DRF, the admin) recurse once per level and must never run out of stack.
MAX_JSON_DEPTH = 32
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
_NESTING_STEP = np.zeros(256, np.int8)
_NESTING_STEP[[ord("["), ord("{")]] = 1
_NESTING_STEP[[ord("]"), ord("}")]] = -1
MAX_REPORTED_PROBLEMS = 20

_x, _y = attrgetter("x"), attrgetter("y")
_MSGSPEC_PATH = re.compile(r"^(?P<why>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


class Problems:
    """Collects field-path errors; raise_if_any() turns them into one DRF ValidationError (the error shape)."""

    def __init__(self):
        self.fields = {}

    def add(self, path, why):
        if len(self.fields) < MAX_REPORTED_PROBLEMS:
            self.fields.setdefault(path, []).append(why)

    def raise_if_any(self):
        if self.fields:
            raise ValidationError(self.fields)


def decode(body, schema, path="body"):
    """msgspec-decode a body (or the part of one at `path`); a shape error becomes a 400 naming the field path."""
    try:
        decoded = msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_PATH.match(str(exc))
        inner = (match.group("path") or "").lstrip(".")
        if path != "body":
            inner = f"{path}.{inner}" if inner else path
        raise ValidationError({inner or "body": [match.group("why")]}) from None
    except msgspec.DecodeError as exc:
        raise ValidationError({path: [str(exc)]}) from None
    except RecursionError:  # in a field the schema does not know (msgspec skips it recursively)
        raise ValidationError({path: [TOO_DEEP]}) from None
    if path == "body":
        refuse_nul(body)
    return decoded


def refuse_bad_text(raw, path):
    """JSON text about to be stored as sent (fields the schema does not know included, which msgspec skipped
    unchecked) is UTF-8 and nested at most MAX_JSON_DEPTH levels deep, or a 400 naming its field."""
    text = bytes(raw)
    if not text.isascii():
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError({path: [f"byte {exc.start} is not UTF-8 ({exc.reason})"]}) from None
    if text.count(b"[") + text.count(b"{") > MAX_JSON_DEPTH and nesting_depth(text) > MAX_JSON_DEPTH:
        raise ValidationError({path: [TOO_DEEP]})


def nesting_depth(text):
    """The deepest nesting of arrays and objects in JSON text, brackets inside strings not counted (vectorised with
    numpy: it runs on every flush, where a loop in Python over each byte would cost more than the parse)."""
    text = text.replace(b"\\\\", b"").replace(b'\\"', b"")  # without escapes, every quote opens or closes a string
    chars = np.frombuffer(text, np.uint8)
    outside_strings = (np.cumsum(chars == ord('"'), dtype=np.int32) & 1) == 0
    return int(np.cumsum(_NESTING_STEP[chars] * outside_strings, dtype=np.int32).max(initial=0))


def prune_nesting(text, max_depth=MAX_JSON_DEPTH):
    """JSON text with every array or object deeper than max_depth replaced by null (the rest kept as it was)."""
    kept, start, depth, cut_at = [], 0, 0, None
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth == max_depth + 1:
                cut_at = i
        elif char in "]}":
            if depth == max_depth + 1:
                kept += [text[start:cut_at], "null"]
                start = i + 1
            depth -= 1
    kept.append(text[start:])
    return "".join(kept)


def check_page_px(problems, path, value):
    if not -MAX_PAGE_PX <= value <= MAX_PAGE_PX:
        problems.add(path, f"{value} is not a position on the page in px (|px| <= {MAX_PAGE_PX})")


def refuse_nul(body):
    """Bodies are stored as sent, and PostgreSQL's jsonb cannot hold NUL: a \\u0000 anywhere is a 400 naming it."""
    if b"\\u0000" in body:  # the fast check; only a body that may hold one is walked
        where = nul_path(msgspec.json.decode(body))
        if where is not None:
            raise ValidationError({where: ["contains a NUL character (\\u0000), which cannot be stored"]})


def check_fraction(problems, path, value):
    if not 0 <= value <= 1:
        problems.add(path, f"{value} is outside [0, 1]")


def check_epoch_ms(problems, path, value, now_ms):
    if abs(value - now_ms) > DAY_MS:
        problems.add(path, f"{value} is more than a day away from the server clock (epoch ms expected)")


def check_page_ms(problems, path, value):
    if not 0 <= value <= DAY_MS:
        problems.add(path, f"{value} is outside [0, 24 h] in ms since the page was shown")


def check_display_size(problems, path, value):
    if not 0 < value <= MAX_DISPLAY_PX:
        problems.add(path, f"{value} is not a displayed size in px (0 < size <= {MAX_DISPLAY_PX})")


def check_series(problems, path, items, time_field, now_ms=None, fractions=True):
    """A list of samples: coordinates are fractions (when fractions), times plausible and never going back.

    The common case (all valid) is decided with C-level min/max/sorted; only a failing list is walked item by item.
    """
    if not items:
        return
    times = list(map(attrgetter(time_field), items))
    low, high = (0, DAY_MS) if now_ms is None else (now_ms - DAY_MS, now_ms + DAY_MS)
    valid = low <= min(times) and max(times) <= high and times == sorted(times)
    if valid and fractions:
        xs, ys = list(map(_x, items)), list(map(_y, items))
        valid = 0 <= min(xs) and max(xs) <= 1 and 0 <= min(ys) and max(ys) <= 1
    if valid:
        return
    previous = None
    for i, item in enumerate(items):
        if fractions:
            check_fraction(problems, f"{path}[{i}].x", item.x)
            check_fraction(problems, f"{path}[{i}].y", item.y)
        time = times[i]
        if now_ms is None:
            check_page_ms(problems, f"{path}[{i}].{time_field}", time)
        else:
            check_epoch_ms(problems, f"{path}[{i}].{time_field}", time, now_ms)
        if previous is not None and time < previous:
            problems.add(f"{path}[{i}].{time_field}", f"{time} is earlier than the previous sample's {previous}")
        previous = time


def check_toggle_point(problems, path, toggle):
    """A click has its point (fractions); a keyboard toggle has none."""
    pointed = [name for name in ("x", "y") if getattr(toggle, name) is not UNSET]
    if toggle.usingKeyboard:
        for name in pointed:
            problems.add(f"{path}.{name}", "a keyboard toggle has no point: leave x and y out")
    elif len(pointed) < 2:
        for name in ("x", "y"):
            if name not in pointed:
                problems.add(f"{path}.{name}", "required: a click has its point (only usingKeyboard toggles have none)")
    else:
        check_fraction(problems, f"{path}.x", toggle.x)
        check_fraction(problems, f"{path}.y", toggle.y)


def check_toggles(problems, path, toggles, now_ms):
    check_series(problems, path, toggles, "time", now_ms, fractions=False)
    for i, toggle in enumerate(toggles):
        check_toggle_point(problems, f"{path}[{i}]", toggle)


def check_save_envelope(problems, save, client, now_ms):
    """save: a PageSave; client: its ClientInfo."""
    check_epoch_ms(problems, "started_at", save.started_at, now_ms)
    if not 0 <= save.time_spent <= DAY_MS:
        problems.add("time_spent", f"{save.time_spent} is outside [0, 24 h] in ms")
    if client.viewport is not None:
        check_display_size(problems, "client.viewport.w", client.viewport.w)
        check_display_size(problems, "client.viewport.h", client.viewport.h)
    if client.dpr is not None and not 0 < client.dpr <= 16:
        problems.add("client.dpr", f"{client.dpr} is not a device pixel ratio (0 < dpr <= 16)")
    check_series(problems, "client.scroll", client.scroll, "time", now_ms, fractions=False)
    for i, scroll in enumerate(client.scroll):
        check_page_px(problems, f"client.scroll[{i}].x", scroll.x)
        check_page_px(problems, f"client.scroll[{i}].y", scroll.y)
    check_series(problems, "client.visibility", client.visibility, "time", now_ms, fractions=False)


def check_imagenet_records(problems, records, page_index, candidates, now_ms):
    """records: luab.records.ImageNetRecord list; candidates: the page's image keys. One valid record per candidate."""
    first_seen = {}
    for i, record in enumerate(records):
        path = f"records[{i}]"
        if record.imageID not in candidates:
            problems.add(f"{path}.imageID", f"page {page_index}: image {record.imageID} is not on this page")
        elif record.imageID in first_seen:
            problems.add(
                f"{path}.imageID", f"image {record.imageID} is already in records[{first_seen[record.imageID]}]"
            )
        else:
            first_seen[record.imageID] = i
        check_display_size(problems, f"{path}.imageWidth", record.imageWidth)
        check_display_size(problems, f"{path}.imageHeight", record.imageHeight)
        check_page_px(problems, f"{path}.imagePosition.x", record.imagePosition.x)
        check_page_px(problems, f"{path}.imagePosition.y", record.imagePosition.y)
        check_toggles(problems, f"{path}.selectedRecord", record.selectedRecord, now_ms)
        check_toggles(problems, f"{path}.deselectedRecord", record.deselectedRecord, now_ms)
        check_series(problems, f"{path}.hoveredRecord", record.hoveredRecord, "time", now_ms, fractions=False)
        check_series(problems, f"{path}.mouseTracking", record.mouseTracking, "time", now_ms)
        check_selection(problems, path, record)
    missing = [key for key in candidates if key not in first_seen]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        problems.add("records", f"page {page_index}: {len(missing)} candidate(s) have no record: {shown}")


def check_selection(problems, path, record):
    """Clicks toggle: selecting and deselecting clicks alternate, starting with a selecting one."""
    selecting, deselecting = record.selectedRecord, record.deselectedRecord
    if len(selecting) not in (len(deselecting), len(deselecting) + 1):
        problems.add(
            f"{path}.deselectedRecord",
            f"{len(selecting)} selecting and {len(deselecting)} deselecting clicks cannot alternate",
        )
        return
    for k, click in enumerate(deselecting):
        if click.time < selecting[k].time:
            problems.add(
                f"{path}.deselectedRecord[{k}].time",
                f"deselecting click at {click.time} comes before the selecting click at {selecting[k].time}",
            )
        elif k + 1 < len(selecting) and selecting[k + 1].time < click.time:
            problems.add(
                f"{path}.selectedRecord[{k + 1}].time",
                f"selecting click at {selecting[k + 1].time} comes before the deselecting click at {click.time}",
            )
    ends_selected = len(selecting) == len(deselecting) + 1
    if record.selected != ends_selected:
        problems.add(
            f"{path}.selected",
            f"{str(record.selected).lower()}, but {len(selecting)} selecting and {len(deselecting)} deselecting "
            f"clicks leave the image {'selected' if ends_selected else 'unselected'}",
        )


def check_icon_action(problems, path, action, category_keys):
    if action.iconType not in category_keys:
        problems.add(f"{path}.iconType", f"unknown category {action.iconType}")
    for name in ("pointFrom", "pointTo"):
        point = getattr(action, name)
        if point:
            check_fraction(problems, f"{path}.{name}.x", point.x)
            check_fraction(problems, f"{path}.{name}.y", point.y)
    check_page_ms(problems, f"{path}.timeAt", action.timeAt)


def check_not_earlier(problems, path, items, i):
    """items[i] (a list at `path` of things with a timeAt) does not come earlier than the item before it."""
    if i and items[i].timeAt < items[i - 1].timeAt:
        problems.add(f"{path}[{i}].timeAt", f"{items[i].timeAt} is earlier than {items[i - 1].timeAt}")


def check_group_index(problems, path, index, n_groups):
    if not 0 <= index < n_groups:
        problems.add(path, f"{index} is not a group index (0..{n_groups - 1})")


def check_coco_record(problems, records, page_index, image_key, category_keys, n_groups):
    """The page's single record; returns the replayed final positions (None when the record is invalid)."""
    if len(records) != 1:
        problems.add("records", f"a COCO-style page has exactly one record, got {len(records)}")
        return None
    record, path = records[0], "records[0]"
    if str(record.image_id) != image_key:
        problems.add(f"{path}.image_id", f"page {page_index} shows image {image_key}, not {record.image_id}")
    check_display_size(problems, f"{path}.imageWidth", record.imageWidth)
    check_display_size(problems, f"{path}.imageHeight", record.imageHeight)
    if not 0 <= record.timeSpent <= DAY_MS:
        problems.add(f"{path}.timeSpent", f"{record.timeSpent} is outside [0, 24 h] in ms")
    for i, action in enumerate(record.actionHistories):
        check_icon_action(problems, f"{path}.actionHistories[{i}]", action, category_keys)
        check_not_earlier(problems, f"{path}.actionHistories", record.actionHistories, i)
    browsed = set()
    for i, visit in enumerate(record.categoryHistories):
        check_group_index(problems, f"{path}.categoryHistories[{i}].categoryIndex", visit.categoryIndex, n_groups)
        browsed.add(visit.categoryIndex)
        check_page_ms(problems, f"{path}.categoryHistories[{i}].timeAt", visit.timeAt)
        check_not_earlier(problems, f"{path}.categoryHistories", record.categoryHistories, i)
    unbrowsed = [str(index) for index in range(n_groups) if index not in browsed]
    if unbrowsed:
        problems.add(
            f"{path}.categoryHistories",
            f"group(s) {', '.join(unbrowsed)} of {n_groups} were never browsed; browse every group before saving",
        )
    check_series(problems, f"{path}.mouseTracking", record.mouseTracking, "timeAt")
    if problems.fields:
        return None
    try:
        return replay_actions(msgspec.to_builtins(record.actionHistories))
    except ReplayError as exc:
        problems.add(f"{path}.actionHistories[{exc.index}]", str(exc))
        return None


def check_events(problems, flush, now_ms, image_keys=None, category_keys=None, n_groups=None):
    """Flushed events: image ids on this page, known categories and groups, fractions, plausible times.

    image_keys / category_keys are None on pages of the other kind: then events that need them are refused.
    """
    check_epoch_ms(problems, "sent_at", flush.sent_at, now_ms)
    for i, event in enumerate(flush.events):
        path = f"events[{i}]"
        image_id = getattr(event, "image_id", None)
        if image_id is not None:
            if image_keys is None:
                problems.add(f"{path}.type", f"{event.__struct_config__.tag} events belong to ImageNet-style pages")
            elif image_id not in image_keys:
                problems.add(f"{path}.image_id", f"image {image_id} is not on this page")
        if isinstance(event, schemas.ClickEvent):
            check_toggle_point(problems, path, event)
        elif isinstance(event, (schemas.MoveEvent, schemas.TrackEvent)):
            check_fraction(problems, f"{path}.x", event.x)
            check_fraction(problems, f"{path}.y", event.y)
        elif isinstance(event, schemas.ScrollEvent):
            check_page_px(problems, f"{path}.x", event.x)
            check_page_px(problems, f"{path}.y", event.y)
        if isinstance(event, schemas.ActionEvent):
            if category_keys is None:
                problems.add(f"{path}.type", "action events belong to COCO-style pages")
            else:
                check_icon_action(problems, path, event, category_keys)
        elif isinstance(event, schemas.CategoryEvent):
            if n_groups is None:
                problems.add(f"{path}.type", "category events belong to COCO-style pages")
            else:
                check_group_index(problems, f"{path}.categoryIndex", event.categoryIndex, n_groups)
        if hasattr(event, "timeAt"):
            if not isinstance(event, schemas.ActionEvent):
                check_page_ms(problems, f"{path}.timeAt", event.timeAt)
        else:
            check_epoch_ms(problems, f"{path}.time", event.time, now_ms)
