"""ImageNet-AB: a tar.gz of one XML file per image at train_xml/<wnid>/<stem>.xml (seed 000, Figure A).

The root `annotation` starts with the ILSVRC / Pascal-VOC header (folder, filename, source, size, segmented,
objects with their boxes) and holds one `metadata` element per worker session that showed the image. Every
value is a text node; coordinates keep three decimals like the published files.

As published, `selectedRecord` lists all clicks on the image in time order (selecting and deselecting ones
alternate, so `selected` is True when their number is odd); we store the selecting and the deselecting clicks
apart (luab.records) and merge them here, and an import splits them again by position.

The records written are mappings with neutral names (image_key, page_index, worker_hashed_id ..., as the export
selectors name them); the records read are luab.records.PublishedImageNetRecord.
"""
import gzip
import io
import itertools
import tarfile
from dataclasses import dataclass, field
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from luab.formatting import XML_COORDINATE, pixel_number
from luab.records import Hover, Point, PublishedImageNetRecord, TimedPoint, Toggle

MEMBER_PREFIX = "train_xml/"
# One image's sessions: the released files' largest are well under 1 MiB. A bigger member is refused from its tar
# header, before it is inflated (a 400 KB tar.gz can hold a 400 MB member).
MAX_MEMBER_BYTES = 16 * 2**20
DATABASE_NAME = "ILSVRC_2012"
# Whole images are buffered per tar member only; this many are grouped for one ground-truth query.
IMAGES_PER_OBJECT_QUERY = 500


def image_id(record):
    """ImageNet-AB's imageID: "<wnid>/<stem>", the wnid being the image's own class."""
    return f"{wnid(record)}/{record['image_key']}"


def wnid(record):
    return record["image_label"] or record["page_category"] or "unlabelled"


def estimate_time(hovered_record, selecting_clicks, deselecting_clicks):
    """Milliseconds the pointer spent over the image while it was not selected."""
    clicks = sorted(
        [(click["time"], True) for click in selecting_clicks] + [(click["time"], False) for click in deselecting_clicks]
    )
    total = 0
    entered_at = None
    for event in hovered_record:
        if event["action"] == "enter":
            entered_at = event["time"]
        elif entered_at is not None:
            total += _unselected_time(entered_at, event["time"], clicks)
            entered_at = None
    return total


def _unselected_time(start, end, clicks):
    selected = False
    for time, now_selected in clicks:
        if time <= start:
            selected = now_selected
    unselected_ms, cursor = 0, start
    for time, now_selected in clicks:
        if start < time < end:
            if not selected:
                unselected_ms += time - cursor
            selected, cursor = now_selected, time
    if not selected:
        unselected_ms += end - cursor
    return unselected_ms


def _points(tag, points):
    template = (
        f"\t\t<{tag}>\n\t\t\t<x>{XML_COORDINATE}</x>\n\t\t\t<y>{XML_COORDINATE}</y>\n"
        f"\t\t\t<time>%d</time>\n\t\t</{tag}>\n"
    )
    keyboard = f"\t\t<{tag}>\n\t\t\t<time>%d</time>\n\t\t\t<usingKeyboard>True</usingKeyboard>\n\t\t</{tag}>\n"
    # A keyboard toggle (our extension) has no point: no x / y rather than a made-up one.
    return "".join([
        template % (p["x"], p["y"], p["time"]) if "x" in p else keyboard % p["time"] for p in points
    ])


def merge_clicks(selecting_clicks, deselecting_clicks):
    """All clicks in time order, as ImageNet-AB's selectedRecord lists them."""
    return sorted(selecting_clicks + deselecting_clicks, key=lambda click: click["time"])


def split_clicks(all_clicks):
    """ImageNet-AB's clicks alternate select, deselect, select...: (selecting clicks, deselecting clicks)."""
    return all_clicks[0::2], all_clicks[1::2]


def metadata_xml(record, exported_worker_id, with_state):
    hovered = record["hovered_record"]
    all_clicks = merge_clicks(record["selected_record"], record["deselected_record"])
    position = record["image_position"] or {}
    parts = [
        "\t<metadata>\n",
        f"\t\t<imageID>{escape(image_id(record))}</imageID>\n",
        f"\t\t<selected>{'True' if record['selected'] else 'False'}</selected>\n",
        _points("selectedRecord", all_clicks),
        "".join([
            f"\t\t<hoveredRecord>\n\t\t\t<action>{escape(h['action'])}</action>\n"
            f"\t\t\t<time>{h['time']}</time>\n\t\t</hoveredRecord>\n"
            for h in hovered
        ]),
        _points("mouseTracking", record["mouse_tracking"]),
        f"\t\t<selectedCount>{len(all_clicks)}</selectedCount>\n",
        f"\t\t<hoveredCount>{sum(1 for h in hovered if h['action'] == 'enter')}</hoveredCount>\n",
        f"\t\t<estimateTime>"
        f"{estimate_time(hovered, record['selected_record'], record['deselected_record'])}</estimateTime>\n",
        f"\t\t<originalImageWidth>{record['original_width']}</originalImageWidth>\n",
        f"\t\t<originalImageHeight>{record['original_height']}</originalImageHeight>\n",
        f"\t\t<imageWidth>{record['image_width']}</imageWidth>\n",
        f"\t\t<imageHeight>{record['image_height']}</imageHeight>\n",
        f"\t\t<imagePosition>\n\t\t\t<x>{position.get('x', 0)}</x>\n\t\t\t<y>{position.get('y', 0)}</y>\n"
        f"\t\t</imagePosition>\n",
        f"\t\t<worker_id>{exported_worker_id}</worker_id>\n",
        f"\t\t<assignment_id>{escape(assignment_id(record))}</assignment_id>\n",
        f"\t\t<page_idx>{record['page_index']}</page_idx>\n",
    ]
    if with_state:
        parts.append(f"\t\t<assignment_state>{record['assignment_state']}</assignment_state>\n")
    parts.append("\t</metadata>\n")
    return "".join(parts)


def assignment_id(record):
    return record["assignment_external_id"] or str(record["assignment_uuid"])


def annotation_xml(records, objects, anonymise, with_state=False):
    """The XML document of one image: header, boxes, then one metadata element per session."""
    first = records[0]
    folder = escape(wnid(first))
    parts = [
        "<annotation>\n",
        f"\t<folder>{folder}</folder>\n",
        f"\t<filename>{escape(first['image_key'])}</filename>\n",
        f"\t<source>\n\t\t<database>{DATABASE_NAME}</database>\n\t</source>\n",
        f"\t<size>\n\t\t<width>{first['original_width']}</width>\n\t\t<height>{first['original_height']}</height>\n"
        "\t\t<depth>3</depth>\n\t</size>\n",
        "\t<segmented>0</segmented>\n",
    ]
    for category_key, (x, y, w, h) in objects:
        parts.append(
            f"\t<object>\n\t\t<name>{escape(category_key)}</name>\n\t\t<pose>Unspecified</pose>\n"
            "\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{round(x)}</xmin>\n\t\t\t<ymin>{round(y)}</ymin>\n"
            f"\t\t\t<xmax>{round(x + w)}</xmax>\n\t\t\t<ymax>{round(y + h)}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        )
    for record in records:
        parts.append(metadata_xml(record, anonymise(record["worker_hashed_id"]), with_state))
    parts.append("</annotation>\n")
    return "".join(parts).encode()


def write_tar(records, out, anonymise, load_objects, with_state=False, on_record=None):
    """Stream a tar of XML members into `out` (a binary file already wrapped in gzip). Returns the record count.

    `records` must come ordered by image; `load_objects(image_ids)` gives each image's (category key, bbox) list.
    """
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        by_image = itertools.groupby(records, key=lambda record: record["image_id"])
        while True:
            groups = [list(sessions) for _, sessions in itertools.islice(by_image, IMAGES_PER_OBJECT_QUERY)]
            if not groups:
                break
            objects = load_objects([sessions[0]["image_id"] for sessions in groups])
            for sessions in groups:
                document = annotation_xml(sessions, objects.get(sessions[0]["image_id"], []), anonymise, with_state)
                info = tarfile.TarInfo(f"{MEMBER_PREFIX}{wnid(sessions[0])}/{sessions[0]['image_key']}.xml")
                info.size = len(document)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(document))
                tar.members.clear()  # TarFile keeps every member's header for listing; a stream needs none
                count += len(sessions)
                if on_record:
                    on_record(len(sessions))
    return count


@dataclass
class ParsedAnnotation:
    """One XML member: the image's file stem and one PublishedImageNetRecord per `metadata` element."""

    member: str
    stem: str
    sessions: list = field(default_factory=list)


class MalformedAnnotation(ValueError):
    """A member of an ImageNet-AB tarball that is not a valid annotation; the message names member and field."""


def _text(element, tag, where):
    child = element.find(tag)
    if child is None or child.text is None:
        raise MalformedAnnotation(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(element, tag, where, kind):
    text = _text(element, tag, where)
    try:
        return kind(text)
    except ValueError:
        raise MalformedAnnotation(f"{where}: <{tag}> is {text!r}, not a number") from None


def _toggle(p, where):
    if p.findtext("usingKeyboard") == "True":  # our keyboard toggles: a time, no point
        return Toggle(time=_number(p, "time", where, int), usingKeyboard=True)
    return Toggle(x=_number(p, "x", where, float), y=_number(p, "y", where, float), time=_number(p, "time", where, int))


def _timed_point(p, where):
    return TimedPoint(_number(p, "x", where, float), _number(p, "y", where, float), _number(p, "time", where, int))


def _point_list(metadata, tag, where, parse):
    return [parse(p, f"{where} <{tag}>") for p in metadata.findall(tag)]


def parse_annotation(member, data):
    """Parse one XML member into its sessions; raises MalformedAnnotation naming the member and the field."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        raise MalformedAnnotation(f"{member}: not well-formed XML ({error})") from None
    if root.tag != "annotation":
        raise MalformedAnnotation(f"{member}: root element is <{root.tag}>, expected <annotation>")
    annotation = ParsedAnnotation(member=member, stem=_text(root, "filename", member))
    for index, metadata in enumerate(root.findall("metadata")):
        where = f"{member} metadata {index}"
        selected = _text(metadata, "selected", where)
        if selected not in ("True", "False"):
            raise MalformedAnnotation(f"{where}: <selected> is {selected!r}, expected True or False")
        position = metadata.find("imagePosition")
        if position is None:
            raise MalformedAnnotation(f"{where}: missing <imagePosition>")
        selecting_clicks, deselecting_clicks = split_clicks(_point_list(metadata, "selectedRecord", where, _toggle))
        annotation.sessions.append(PublishedImageNetRecord(
            imageID=_text(metadata, "imageID", where),
            selected=selected == "True",
            selectedRecord=selecting_clicks,
            deselectedRecord=deselecting_clicks,
            hoveredRecord=[
                Hover(_text(h, "action", f"{where} <hoveredRecord>"),
                      _number(h, "time", f"{where} <hoveredRecord>", int))
                for h in metadata.findall("hoveredRecord")
            ],
            mouseTracking=_point_list(metadata, "mouseTracking", where, _timed_point),
            imagePosition=Point(_number(position, "x", f"{where} <imagePosition>", pixel_number),
                                _number(position, "y", f"{where} <imagePosition>", pixel_number)),
            imageWidth=_number(metadata, "imageWidth", where, int),
            imageHeight=_number(metadata, "imageHeight", where, int),
            worker_id=_text(metadata, "worker_id", where),
            assignment_id=_text(metadata, "assignment_id", where),
            page_idx=_number(metadata, "page_idx", where, int),
        ))
    return annotation


def safe_member_name(name):
    """Refuse absolute paths and '..' components (path traversal) in member names."""
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts and ":" not in parts[0]


def read_tar(fileobj):
    """Yield ParsedAnnotation for every XML member of an ImageNet-AB tar.gz, streaming (mode r|).

    GzipFile inflates a bounded amount at a time; tarfile's own "r|gz" keeps whatever a 10 KiB read inflates to,
    which grows with the compression ratio."""
    try:
        with gzip.GzipFile(fileobj=fileobj, mode="rb") as tar_stream, \
                tarfile.open(fileobj=tar_stream, mode="r|") as tar:
            for member in tar:
                if not safe_member_name(member.name):
                    raise MalformedAnnotation(f"{member.name}: refused, the path leaves the archive")
                if not member.isfile() or not member.name.endswith(".xml"):
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise MalformedAnnotation(
                        f"{member.name}: {member.size} bytes; an annotation member is at most {MAX_MEMBER_BYTES} bytes"
                    )
                yield parse_annotation(member.name, tar.extractfile(member).read(MAX_MEMBER_BYTES))
                tar.members.clear()  # TarFile keeps every member's header for listing; a stream needs none
    except (tarfile.TarError, EOFError, OSError) as error:
        raise MalformedAnnotation(f"not a readable tar.gz archive ({error})") from None
