"""COCO-AB: one JSON list of (assignment, page) records (seed 000, Figure B).

`iconType` carries the category name, as in the published file; `pointFrom` is null on add and `pointTo` is
absent on remove (luab.actions.action_dict); coordinates keep three decimals.

The records written are mappings with neutral names (image_key, page_index, worker_hashed_id ..., as the export
selectors name them); the records read are luab.records.PublishedCocoRecord.
"""
import itertools
import json

import msgspec

from luab.actions import action_dict, missing_point
from luab.formatting import rounded_point
from luab.records import PublishedCocoRecord


def coco_image_id(image_key):
    """COCO image ids are integers; keys that are not (our own datasets) stay strings."""
    return int(image_key) if image_key.isdigit() else image_key


def hit_id(record, batch_name):
    return record["hit_external_id"] or f"{batch_name}-{record['hit_index']}"


def exported_action(action, category_names):
    """A stored action as published: iconType the category's name, coordinates rounded."""
    point_from, point_to = (action.get(name) for name in ("pointFrom", "pointTo"))
    return action_dict(
        action["actionType"], category_names.get(action["iconType"], action["iconType"]),
        point_from and rounded_point(point_from, None), point_to and rounded_point(point_to, None), action["timeAt"],
    )


def coco_ab_record(record, anonymise, category_names, batch_name, with_state=False):
    exported = {
        "image_id": coco_image_id(record["image_key"]),
        "page_id": record["page_index"],
        "hit_id": hit_id(record, batch_name),
        "worker_id": anonymise(record["worker_hashed_id"]),
        "originalImageWidth": record["original_width"],
        "originalImageHeight": record["original_height"],
        "imageWidth": record["image_width"],
        "imageHeight": record["image_height"],
        "actionHistories": [exported_action(action, category_names) for action in record["action_histories"]],
        "categoryHistories": record["category_histories"],
        "mouseTracking": [rounded_point(point, "timeAt") for point in record["mouse_tracking"]],
        "timeSpent": record["time_spent"],
    }
    if with_state:
        exported["assignment_state"] = record["assignment_state"]
    return exported


def write_json_list(records, out, to_dict, on_record=None):
    """Stream a JSON list into the binary file `out`, one record per line. Returns the record count."""
    encoder = msgspec.json.Encoder()
    count = 0
    out.write(b"[")
    for record in records:
        out.write(b",\n" if count else b"\n")
        out.write(encoder.encode(to_dict(record)))
        count += 1
        if on_record:
            on_record(1)
    out.write(b"\n]\n")
    return count


READ_CHUNK_CHARS = 1 << 20


class MalformedCocoAb(ValueError):
    """A COCO-AB file that does not parse; the message names the record and the field."""


class _JsonListReader:
    """Reads the elements of a top-level JSON list from a text file one at a time (memory: about one element)."""

    def __init__(self, fileobj, chunk_chars):
        self.fileobj, self.chunk_chars = fileobj, chunk_chars
        self.buffer, self.position, self.exhausted = "", 0, False
        self.decoder = json.JSONDecoder()

    def _fill(self):
        """Append the next chunk (dropping what was consumed); False at the end of the file."""
        try:
            more = "" if self.exhausted else self.fileobj.read(self.chunk_chars)
        except UnicodeDecodeError as error:
            raise MalformedCocoAb(f"not UTF-8 text ({error.reason} at byte {error.start} of a chunk)") from None
        self.exhausted = not more
        self.buffer, self.position = self.buffer[self.position:] + more, 0
        return bool(more)

    def _next_char(self):
        """The next character that is not white space ("" at the end of the file), not consumed."""
        while True:
            while self.position < len(self.buffer) and self.buffer[self.position] in " \t\r\n":
                self.position += 1
            if self.position < len(self.buffer):
                return self.buffer[self.position]
            if not self._fill():
                return ""

    def _element(self, index):
        while True:
            try:
                element, end = self.decoder.raw_decode(self.buffer, self.position)
            except json.JSONDecodeError as error:
                if self._fill():
                    continue
                raise MalformedCocoAb(f"record {index}: not valid JSON ({error.msg})") from None
            if end == len(self.buffer) and self._fill():
                continue  # a number cut by the chunk boundary would decode short
            self.position = end
            return element

    def elements(self):
        if self._next_char() != "[":
            raise MalformedCocoAb("not a JSON list: the file must start with [")
        self.position += 1
        if self._next_char() == "]":
            return
        for index in itertools.count():
            yield self._element(index)
            separator = self._next_char()
            if separator == "]":
                return
            if separator != ",":
                raise MalformedCocoAb(f"record {index}: expected , or ] after it, found {separator or 'the end'}")
            self.position += 1
            self._next_char()


def iter_json_list(fileobj, chunk_chars=READ_CHUNK_CHARS):
    """Yield the elements of a top-level JSON list from a text file, one at a time."""
    return _JsonListReader(fileobj, chunk_chars).elements()


def read_json_list(fileobj):
    """Yield validated PublishedCocoRecord objects from a COCO-AB JSON list (a text file), streaming."""
    for index, element in enumerate(iter_json_list(fileobj, READ_CHUNK_CHARS)):
        try:
            record = msgspec.convert(element, PublishedCocoRecord)
        except msgspec.ValidationError as error:
            raise MalformedCocoAb(f"record {index}: {error}") from None
        where = f"record {index} (image_id {record.image_id})"
        if record.hit_key is None:
            raise MalformedCocoAb(f"{where}: needs hit_id or assignment_id")
        if record.page_index is None:
            raise MalformedCocoAb(f"{where}: needs page_id or page_idx")
        for number, action in enumerate(record.actionHistories):
            missing = missing_point(action.actionType, {"pointFrom": action.pointFrom, "pointTo": action.pointTo})
            if missing:
                raise MalformedCocoAb(f"{where}: actionHistories[{number}] ({action.actionType}) has no {missing}")
        yield record
