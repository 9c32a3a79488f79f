"""Byproduct analysis report of one batch (seed 000, section E) on our own data, next to the paper's figures.

ImageNet-style: localisation accuracy of the first selecting click against the ground-truth boxes, the
always-centre and uniform-random baselines, accuracy on images whose centre is off the object, accuracy of the
mouse trace by its position before the click (last N samples, trace quantiles), clicks relative to the box,
recall against object size. COCO-style: icon accuracy on the masks (replayed final positions), the histogram of
per-icon action sequences, recall against object size. Both: time per page and per HIT.
Only approved work is analysed, except time: every submitted HIT, counted as the review dashboard counts it (the
pages' own measured time). Coordinates are fractions of the displayed image, which shows the whole image.

The click accuracy and its baselines follow the paper's definition (seed 000, E.1 and Figure C): they are
measured per image, every image weighing the same. The image set is the images of the batch that have GT boxes
and at least one approved first click of a record that selected them on a page of their own class. Per image:
click accuracy = share of its first clicks inside a GT box (one click per image in the paper); always-centre =
1 if the image centre lies in a GT box, else 0; uniform random = the share of the image the union of its boxes
covers (the paper's "average bounding box area in each image", sigma = infinity); off-centre = the click accuracy
on the images whose centre is in no box. Each figure is the mean over the images. The per-click accuracy (every
click counted, images with more workers weighing more) is reported next to it.
"""
import base64
import hashlib
import itertools
import json
import logging
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from annotator import files
from annotator.exports import selectors
from annotator.models import Assignment, CocoRecord, GroundTruthObject, PageSubmission, TaskKind
from annotator.review import selectors as review_selectors
from luab.geometry import in_pixels, point_in_box
from luab.summaries import icons_on_their_objects, objects_by_category
from luab.targets import first_click

logger = logging.getLogger(__name__)

# Seed 000: section E, D.2 and the C.1/C.2 HIT statistics.
PAPER = {
    "click_accuracy": 0.829,
    "centre_baseline": 0.839,
    "uniform_baseline": 0.482,
    "off_centre_click_accuracy": 0.565,
    "trace_at_entry_accuracy": 0.393,
    "icon_accuracy": 0.923,
    "action_sequences": {"add": 0.94, "add-move": 0.03, "add-remove-add": 0.02},
    "median_minutes_per_hit": {TaskKind.IMAGENET: 9.0, TaskKind.COCO: 12.1},
}
LAST_N = 10
TRACE_QUANTILES = 10
RELATIVE_CLICK_BINS = 40
RECORD_CHUNK = 2000
IMAGENET_SIZE_BINS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0001)
# COCO's own small / medium / large object areas, in pixels.
COCO_SIZE_BINS = (("small", 0, 32 ** 2), ("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, float("inf")))


@dataclass
class Mean:
    """The mean of the values added: a rate when they are hits (True / False), or of per-image values."""
    sum: float = 0.0
    total: int = 0

    def add(self, value):
        self.sum += value
        self.total += 1

    @property
    def value(self):
        return self.sum / self.total if self.total else None

    def as_dict(self):
        return {"value": self.value, "n": self.total}


def union_area_fraction(boxes, width, height):
    """Share of the image covered by the union of the boxes: the accuracy of a uniformly random click."""
    clipped = [
        (max(0, x), max(0, y), min(width, x + w), min(height, y + h)) for x, y, w, h in boxes
    ]
    clipped = [box for box in clipped if box[2] > box[0] and box[3] > box[1]]
    xs = sorted({edge for box in clipped for edge in (box[0], box[2])})
    area = 0.0
    for left, right in itertools.pairwise(xs):
        spans = sorted((box[1], box[3]) for box in clipped if box[0] <= left and box[2] >= right)
        covered, reach = 0.0, None
        for top, bottom in spans:
            if reach is None or top > reach:
                covered += bottom - top
                reach = bottom
            elif bottom > reach:
                covered += bottom - reach
                reach = bottom
        area += covered * (right - left)
    return area / (width * height)


def _in_any_box(x, y, boxes):
    return any(point_in_box(x, y, box) for box in boxes)


def _with_ground_truth(records, *fields):
    """(record, [its image's ground-truth objects as tuples of the fields]) pairs, objects fetched once per chunk of
    records."""
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, RECORD_CHUNK)):
        objects = {}
        for image_id, *values in GroundTruthObject.objects.filter(
            image_id__in={record["image_id"] for record in chunk}
        ).values_list("image_id", *fields):
            objects.setdefault(image_id, []).append(tuple(values))
        for record in chunk:
            yield record, objects.get(record["image_id"], [])


def _trace_before_click(record, click_time):
    """Mouse samples from the last time the pointer entered the image up to the click."""
    entered = [h["time"] for h in record["hovered_record"] if h["action"] == "enter" and h["time"] <= click_time]
    start = max(entered) if entered else float("-inf")
    return [p for p in record["mouse_tracking"] if start <= p["time"] <= click_time]


def _size_bin(value, edges):
    for low, high in itertools.pairwise(edges):
        if low <= value < high:
            return f"{low:.2f}-{min(high, 1):.2f}"
    return None


def imagenet_analysis(batch):
    # Per image (the paper's definition, see the module docstring): click accuracy and its baselines.
    click, centre, uniform, off_centre = Mean(), Mean(), Mean(), Mean()
    each_click = Mean()
    last_n = [Mean() for _ in range(LAST_N)]
    quantiles = [Mean() for _ in range(TRACE_QUANTILES + 1)]
    recall_by_size = {_size_bin(low, IMAGENET_SIZE_BINS): Mean() for low in IMAGENET_SIZE_BINS[:-1]}
    relative_clicks = []
    records = selectors.json_columns(
        selectors.imagenet_records(batch).iterator(chunk_size=RECORD_CHUNK), selectors.IMAGENET_JSON_FIELDS
    )
    # Records come ordered by image, so one image's sessions are consecutive.
    for _, sessions in itertools.groupby(_with_ground_truth(records, "bbox"), key=lambda pair: pair[0]["image_id"]):
        image_clicks = Mean()
        for record, objects in sessions:
            boxes = [bbox for bbox, in objects]
            if not boxes:
                continue
            width, height = record["original_width"], record["original_height"]
            in_class = record["page_category"] == record["image_label"]
            if in_class:
                largest = max(w * h for _, _, w, h in boxes) / (width * height)
                recall_by_size[_size_bin(min(largest, 1.0), IMAGENET_SIZE_BINS)].add(record["selected"])
            target = first_click(record["selected_record"])
            if not (in_class and record["selected"] and target):
                continue
            x, y = in_pixels(target, width, height)
            on_object = _in_any_box(x, y, boxes)
            image_clicks.add(on_object)
            each_click.add(on_object)
            bx, by, bw, bh = max(boxes, key=lambda box: box[2] * box[3])
            if bw > 0 and bh > 0:
                relative_clicks.append(((x - bx) / bw, (y - by) / bh))
            trace = _trace_before_click(record, target["time"])
            for n, rate in enumerate(last_n, start=1):
                if len(trace) >= n:
                    rate.add(_in_any_box(*in_pixels(trace[-n], width, height), boxes))
            if trace:
                for q, rate in enumerate(quantiles):
                    sample = trace[round(q / TRACE_QUANTILES * (len(trace) - 1))]
                    rate.add(_in_any_box(*in_pixels(sample, width, height), boxes))
        if not image_clicks.total:
            continue
        centre_on_object = _in_any_box(width / 2, height / 2, boxes)
        click.add(image_clicks.value)
        centre.add(centre_on_object)
        uniform.add(union_area_fraction(boxes, width, height))
        if not centre_on_object:
            off_centre.add(image_clicks.value)
    return {
        "click_accuracy": click.as_dict(),
        "click_accuracy_per_click": each_click.as_dict(),
        "centre_baseline": centre.as_dict(),
        "uniform_baseline": uniform.as_dict(),
        "off_centre_click_accuracy": off_centre.as_dict(),
        "trace_last_n": [{"n": n, **rate.as_dict()} for n, rate in enumerate(last_n, start=1)],
        "trace_quantiles": [
            {"quantile": q / TRACE_QUANTILES, **rate.as_dict()} for q, rate in enumerate(quantiles)
        ],
        "recall_by_size": {name: rate.as_dict() for name, rate in recall_by_size.items()},
        "relative_clicks": relative_clicks,
    }


def action_sequences(action_histories):
    """Per icon, the sequence of its action types in order ("add", "add-move", "add-remove-add" ...)."""
    per_icon = {}
    for action in action_histories:
        per_icon.setdefault(action["iconType"], []).append(action["actionType"])
    return ["-".join(types) for types in per_icon.values()]


def coco_analysis(batch):
    icons = Mean()
    sequences = Counter()
    recall_by_size = {name: Mean() for name, _, _ in COCO_SIZE_BINS}
    records = (
        CocoRecord.objects.filter(assignment__hit__batch=batch, assignment__state=Assignment.State.APPROVED)
        .order_by("id").values("image_id", "action_histories", "final_positions",
                                 original_width=F("image__width"), original_height=F("image__height"))
        .iterator(chunk_size=RECORD_CHUNK)
    )
    fields = ("category__key", "bbox", "segmentation", "area", "iscrowd")
    for record, image_objects in _with_ground_truth(records, *fields):
        width, height = record["original_width"], record["original_height"]
        by_key = objects_by_category((key, bbox, segmentation) for key, bbox, segmentation, _, _ in image_objects)
        for on_object in icons_on_their_objects(record["final_positions"], by_key, width, height).values():
            icons.add(on_object)
        sequences.update(action_sequences(record["action_histories"]))
        for key, bbox, _, area, iscrowd in image_objects:
            if iscrowd:
                continue
            area = area or bbox[2] * bbox[3]
            size = next(name for name, low, high in COCO_SIZE_BINS if low <= area < high)
            recall_by_size[size].add(key in record["final_positions"])
    total = sum(sequences.values())
    return {
        "icon_accuracy": icons.as_dict(),
        "action_sequences": [
            {"sequence": sequence, "count": count, "share": count / total}
            for sequence, count in sequences.most_common()
        ],
        "recall_by_size": {name: rate.as_dict() for name, rate in recall_by_size.items()},
    }


def time_analysis(batch):
    """Seconds per page and minutes per HIT over the submitted work, as the review dashboard counts them."""
    done = Assignment.objects.filter(hit__batch=batch, state__in=Assignment.FINISHED_STATES)
    page_seconds = [ms / 1000 for ms in PageSubmission.objects.filter(assignment__in=done)
                    .values_list("time_spent_ms", flat=True).iterator(chunk_size=RECORD_CHUNK)]
    return {
        "pages": len(page_seconds),
        "median_seconds_per_page": statistics.median(page_seconds) if page_seconds else None,
        "mean_seconds_per_page": statistics.fmean(page_seconds) if page_seconds else None,
        "median_minutes_per_hit": review_selectors.median_minutes_per_hit(done),
        "page_seconds": page_seconds,
    }


def _figure():
    figure = Figure(figsize=(6, 3.6))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, axes, path, title):
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)


def _bar_against_paper(path, title, labels, ours, paper):
    figure, axes = _figure()
    positions = range(len(labels))
    axes.bar([p - 0.2 for p in positions], [v or 0 for v in ours], width=0.4, label="this batch")
    axes.bar([p + 0.2 for p in positions], [v or 0 for v in paper], width=0.4, label="seed 000 (paper)")
    axes.set_xticks(list(positions), labels, fontsize="small")
    axes.set_ylim(0, 1)
    axes.legend(fontsize="small")
    _save(figure, axes, path, title)


def _line(path, title, xs, rates, xlabel):
    figure, axes = _figure()
    axes.plot(xs, [rate["value"] if rate["value"] is not None else float("nan") for rate in rates], marker="o")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("in the box")
    axes.set_ylim(0, 1)
    _save(figure, axes, path, title)


def _plots(numbers, out_dir, kind):
    """Write the PNGs; returns [(file name, caption)]."""
    plots = []
    if kind == TaskKind.IMAGENET:
        rates = [numbers[key]["value"] for key in
                 ("click_accuracy", "centre_baseline", "uniform_baseline", "off_centre_click_accuracy")]
        _bar_against_paper(
            out_dir / "click_accuracy.png", "Localisation accuracy of clicks",
            ["clicks", "always centre", "uniform random", "clicks, off-centre"], rates,
            [PAPER[key] for key in ("click_accuracy", "centre_baseline", "uniform_baseline",
                                    "off_centre_click_accuracy")],
        )
        plots.append(("click_accuracy.png", "Click-in-box accuracy against the baselines (seed 000, E.1)"))
        _line(out_dir / "trace_last_n.png", "Mouse trace: last N samples before the click",
              [row["n"] for row in numbers["trace_last_n"]], numbers["trace_last_n"], "N samples before the click")
        _line(out_dir / "trace_quantiles.png", "Mouse trace: from entering the image (0) to the click (1)",
              [row["quantile"] for row in numbers["trace_quantiles"]], numbers["trace_quantiles"], "trace quantile")
        plots += [("trace_last_n.png", "Accuracy of the trace by samples before the click (Figure E, last N)"),
                  ("trace_quantiles.png", "Accuracy of the trace by quantile (Figure E, trace quantile)")]
        if numbers["relative_clicks"]:
            figure, axes = _figure()
            xs, ys = zip(*numbers["relative_clicks"])
            axes.hist2d(xs, ys, bins=RELATIVE_CLICK_BINS, range=[[-0.5, 1.5], [-0.5, 1.5]], cmap="magma")
            axes.plot([0, 1, 1, 0, 0], [0, 0, 1, 1, 0], color="cyan")
            axes.invert_yaxis()
            _save(figure, axes, out_dir / "clicks_relative_to_box.png", "Clicks relative to the GT box")
            plots.append(("clicks_relative_to_box.png", "Clicks in the frame of the largest box (Figure F)"))
    else:
        top = numbers["action_sequences"][:10]
        figure, axes = _figure()
        axes.barh([row["sequence"] for row in top][::-1], [row["share"] for row in top][::-1])
        axes.set_xlabel("share of placed icons")
        _save(figure, axes, out_dir / "action_sequences.png", "Icon action sequences")
        plots.append(("action_sequences.png", "Histogram of per-icon action sequences (seed 000, E.2)"))
    sizes = numbers["recall_by_size"]
    figure, axes = _figure()
    axes.bar(list(sizes), [rate["value"] or 0 for rate in sizes.values()])
    axes.set_ylim(0, 1)
    axes.set_xlabel("largest box / image area" if kind == TaskKind.IMAGENET else "object size (COCO areas)")
    _save(figure, axes, out_dir / "recall_by_size.png", "Recall against object size")
    plots.append(("recall_by_size.png", "Recall against object size"))
    if numbers["time"]["page_seconds"]:
        figure, axes = _figure()
        axes.hist(numbers["time"]["page_seconds"], bins=30)
        axes.set_xlabel("seconds per page")
        _save(figure, axes, out_dir / "time_per_page.png", "Time per page")
        plots.append(("time_per_page.png", "Time per page"))
    return plots


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _rows(numbers, kind):
    """(measure, ours, n, paper) rows of the summary table."""
    rows = []
    if kind == TaskKind.IMAGENET:
        for key, label in (("click_accuracy", "Click in a GT box"), ("centre_baseline", "Always-centre click"),
                           ("uniform_baseline", "Uniform random click"),
                           ("off_centre_click_accuracy", "Click in the box, objects off the centre")):
            rows.append((label, _percent(numbers[key]["value"]), numbers[key]["n"], _percent(PAPER[key])))
        per_click = numbers["click_accuracy_per_click"]
        rows.append(("Click in a GT box, every click counted", _percent(per_click["value"]), per_click["n"], ""))
        entry = numbers["trace_quantiles"][0]
        rows.append(("Trace sample on entering the image", _percent(entry["value"]), entry["n"],
                     _percent(PAPER["trace_at_entry_accuracy"])))
    else:
        rows.append(("Icon on its category's mask", _percent(numbers["icon_accuracy"]["value"]),
                     numbers["icon_accuracy"]["n"], _percent(PAPER["icon_accuracy"])))
        shares = {row["sequence"]: row for row in numbers["action_sequences"]}
        for sequence, paper_share in PAPER["action_sequences"].items():
            row = shares.get(sequence, {"share": 0, "count": 0})
            rows.append((f"Icons with actions {sequence}", _percent(row["share"]), row["count"], _percent(paper_share)))
    time = numbers["time"]
    rows.append(("Median minutes per HIT", "n/a" if time["median_minutes_per_hit"] is None
                 else f"{time['median_minutes_per_hit']:.1f}", len(time["page_seconds"]),
                 f"{PAPER['median_minutes_per_hit'][kind]:.1f}"))
    return rows


def build_report(batch):
    """All the numbers of the report for one batch (JSON-serialisable)."""
    with selectors.planned_for_all_rows():
        numbers = imagenet_analysis(batch) if batch.task_kind == TaskKind.IMAGENET else coco_analysis(batch)
        numbers["time"] = time_analysis(batch)
    return numbers


def write_report(batch, out_dir):
    """Write report.html, report.json and the PNG plots into out_dir; returns the path of report.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = build_report(batch)
    plots = _plots(numbers, out_dir, batch.task_kind)
    summary = {key: value for key, value in numbers.items() if key != "relative_clicks"}
    summary["time"] = {key: value for key, value in numbers["time"].items() if key != "page_seconds"}
    (out_dir / "report.json").write_text(json.dumps({"batch": batch.name, "paper": PAPER, "ours": summary}, indent=1))
    style = render_to_string("annotator/byproduct_report.css")
    html = render_to_string("annotator/byproduct_report.html", {
        "style": style, "style_hash": f"sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}",
        "batch": batch, "rows": _rows(numbers, batch.task_kind), "plots": plots, "numbers": summary,
        "recall_by_size": [(name, _percent(rate["value"]), rate["n"]) for name, rate in
                           numbers["recall_by_size"].items()],
        "sequences": [(row["sequence"], row["count"], _percent(row["share"]))
                      for row in numbers.get("action_sequences", [])[:15]],
        "time": summary["time"], "generated_at": timezone.now(),
    })
    path = out_dir / "report.html"
    path.write_text(html)
    logger.info("byproduct report of batch %s written to %s", batch.name, path)
    return path


REPORTS_FOLDER = "reports"


def write_report_to_storage(batch, storage=None):
    """Write the report into the default storage under reports/<batch>/<time>/; returns report.html's URL."""
    storage = storage or default_storage
    folder = f"{REPORTS_FOLDER}/{batch.name}/{timezone.now():%Y%m%d-%H%M%S}"
    with tempfile.TemporaryDirectory() as out_dir:
        write_report(batch, out_dir)
        for path in sorted(Path(out_dir).iterdir()):
            with open(path, "rb") as content:
                storage.save(f"{folder}/{path.name}", File(content))
    return files.url(f"{folder}/report.html")


def stored_reports(batch, storage=None):
    """The reports of a batch in storage, newest first: [{"created": "20261201-101500", "url": ...}]."""
    storage = storage or default_storage
    folder = f"{REPORTS_FOLDER}/{batch.name}"
    try:
        created, _ = storage.listdir(folder)
    except FileNotFoundError:
        return []
    return [{"created": name, "url": files.url(f"{folder}/{name}/report.html")}
            for name in sorted(created, reverse=True) if storage.exists(f"{folder}/{name}/report.html")]
