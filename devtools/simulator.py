"""A simulated crowd that works HITs through the real worker HTTP API, exactly as the task page does.

Each simulated worker opens the task URL (the link provider's parameters, or MTurk's), reads the bootstrap
token from the HTML, reads its assignment and pages, flushes its interface events every few seconds, saves every page
with byproduct records and submits (docs/worker-api.md). Behaviour follows a profile:

- diligent: selects most in-class candidates and few others, clicks on the object with a centre bias;
  COCO: drags the icon of most present categories onto the object's mask.
- sloppy: misses objects (lower recall) and clicks less precisely, works fast.
- spammer: clicks at random, or saves a few pages and hands in early.
- centre: behaves like a careful worker but always clicks (or drops icons) in the middle of the image.

Ground truth is read through the ORM before the run (this runs as a manage.py command), keyed by the candidate ids
the pages show (annotator.candidates, the server's own mapping: the pages never name an image); the server is
reached only over HTTP (or Django's test Client with in_process=True). Times are realistic: epoch ms for ImageNet-style
events, ms since the page was shown for COCO-style ones, with a virtual clock per assignment so nothing sleeps.
"""
import json
import logging
import math
import random
import re
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import requests
from django.db import connections
from tqdm import tqdm

from annotator.candidates import candidate_id
from annotator.models import Assignment, Batch, GroundTruthObject, Hit, HitPage, Image, PageItem, Provider, TaskKind
from annotator.providers.link import PARAM_PRESETS, resolve_params
from luab.actions import ADD, MOVE, REMOVE, action_dict
from luab.geometry import point_on_object

logger = logging.getLogger(__name__)

BOOTSTRAP = re.compile(r'<script id="task-bootstrap" type="application/json">(.*?)</script>', re.DOTALL)
SAMPLE_MS = 17  # the page samples the pointer at most at 60 Hz
# As frontend_static/worker/api.js and event_queue.js: flush every 3 s; retry after 1 s, 2 s, 4 s ... at most 30 s apart.
FLUSH_EVERY_MS = 3000
FLUSH_MAX_EVENTS = 400
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0
RETRY_FOR_S = 30  # a simulated worker gives up after this long (a person might keep the page open for hours)
REQUEST_TIMEOUT_S = 30
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) LUAB-crowd-simulator/1.0"
# The ImageNet-style grid as the page lays it out (CSS px): 8 columns of thumbnails 120 px high.
GRID_COLUMNS, THUMB_HEIGHT, GRID_GAP, GRID_LEFT, GRID_TOP = 8, 120, 12, 24, 200
COCO_DISPLAY_HEIGHT = 450


@dataclass(frozen=True)
class Profile:
    name: str
    select_in_class: float  # chance to select an in-class candidate (ImageNet) / tag a present category (COCO)
    select_other: float  # chance to select a candidate of another class / tag an absent category
    on_object: float  # chance a click is aimed at the object (else anywhere on the image)
    icon_on_object: float  # COCO: chance an icon is dropped aimed at its object (a drag is more deliberate)
    aim_spread: float  # spread of an aimed click around the object's centre, as a share of its size
    click_mode: str  # "object", "random" or "centre"
    speed: float  # time multiplier (1 = the paper's median pace, about 9 min per ImageNet-style HIT)
    hover_rate: float  # chance the pointer passes over a candidate it does not select
    skip_rate: float = 0.0  # chance the worker saves only a few pages and hands in early
    keyboard_rate: float = 0.4  # COCO: chance a group change uses the arrow keys
    correction_rate: float = 0.02  # select-then-deselect slips (ImageNet), move / re-add (COCO)


# Seed 000, C.1: the red-dot cursor raised clicks on the object from 70.7% to 91.7%.
RED_DOT_AIM_GAIN = 0.1
PROFILES = {
    "diligent": Profile("diligent", 0.9, 0.03, 0.85, 0.97, 0.22, "object", 1.0, 0.35),
    "sloppy": Profile("sloppy", 0.5, 0.08, 0.8, 0.85, 0.3, "object", 0.55, 0.15),
    "spammer": Profile("spammer", 0.08, 0.08, 0.0, 0.0, 1.0, "random", 0.2, 0.05, skip_rate=0.5,
                       correction_rate=0.0),
    "centre": Profile("centre", 0.85, 0.04, 1.0, 1.0, 0.0, "centre", 0.8, 0.2),
}


def parse_mix(text):
    """"diligent=0.7,sloppy=0.15,..." -> {profile: share}; shares are normalised to sum to 1."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, share = part.partition("=")
        name = name.strip()
        if name not in PROFILES:
            raise ValueError(f"mix: unknown worker profile {name!r}; choose from {', '.join(PROFILES)}")
        try:
            mix[name] = float(share)
        except ValueError:
            raise ValueError(f"mix: share of {name} is {share!r}, not a number") from None
        if mix[name] < 0:
            raise ValueError(f"mix: share of {name} is negative")
    total = sum(mix.values())
    if not mix or total <= 0:
        raise ValueError("mix: give at least one profile with a positive share, e.g. diligent=1")
    return {name: share / total for name, share in mix.items()}


def assign_profiles(n_workers, mix, rng):
    """Exactly round(share * n) workers per profile (largest remainders), in a seeded random order."""
    exact = {name: share * n_workers for name, share in mix.items()}
    counts = {name: math.floor(value) for name, value in exact.items()}
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[: n_workers - sum(counts.values())]:
        counts[name] += 1
    names = [name for name, count in counts.items() for _ in range(count)]
    rng.shuffle(names)
    return names


# ---- ground truth (read once, through the ORM) ----

@dataclass
class ImageTruth:
    key: str
    width: int
    height: int
    label: str | None  # ImageNet-style class key
    objects: list = field(default_factory=list)  # [(category key, bbox [x, y, w, h] px, segmentation)]
    in_class: bool | None = None  # ImageNet-style: whether it is of the class of the page that shows it

    def objects_of(self, category_key):
        return [o for o in self.objects if o[0] == category_key]


def load_ground_truth(hits):
    """{candidate id: ImageTruth} of every image the given HITs' pages show, under the ids the pages give them.

    The ids come from the server's own mapping (annotator.candidates), so the simulated worker, like a real one,
    is told nothing by the pages: what it knows, it knows from the database, as a person knows it from the pixels.
    """
    hit_ids = [hit.pk for hit in hits]
    hit_keys = dict(Hit.objects.filter(pk__in=hit_ids).values_list("pk", "candidate_key"))
    shown = [  # (hit, page, image, in_class)
        *PageItem.objects.filter(page__hit__in=hit_ids).values_list("page__hit_id", "page_id", "image_id", "in_class"),
        *((hit_id, page_pk, image_pk, None) for hit_id, page_pk, image_pk in HitPage.objects.filter(
            hit__in=hit_ids, image__isnull=False).values_list("hit_id", "pk", "image_id")),
    ]
    by_pk = {}
    rows = Image.objects.filter(pk__in={image_pk for _, _, image_pk, _ in shown})
    for pk, key, width, height, label in rows.values_list("pk", "key", "width", "height", "label__key"):
        by_pk[pk] = ImageTruth(key, width, height, label)
    objects = GroundTruthObject.objects.filter(image__in=by_pk).values_list(
        "image_id", "category__key", "bbox", "segmentation"
    )
    for image_pk, category_key, bbox, segmentation in objects:
        by_pk[image_pk].objects.append((category_key, bbox, segmentation))
    return {
        candidate_id(hit_keys[hit_id], page_pk, image_pk): replace(by_pk[image_pk], in_class=in_class)
        for hit_id, page_pk, image_pk, in_class in shown
    }


# ---- talking to the server ----

class HttpTransport:
    """The worker API over HTTP with one requests.Session per thread."""

    def __init__(self, server, timeout_s=REQUEST_TIMEOUT_S):
        self.server = server.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _session(self):
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = USER_AGENT
        return self._local.session

    def request(self, method, path, token=None, payload=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if payload is None else json.dumps(payload)
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = path if path.startswith("http") else self.server + path
        try:
            response = self._session().request(method, url, data=data, headers=headers, timeout=self.timeout_s)
        except requests.RequestException:
            self._local.session.close()
            del self._local.session  # the next attempt opens a fresh connection (the server may have restarted)
            raise
        return response.status_code, response.text

    def close_thread(self):
        pass


def _allowed_host():
    """A Host header the configured ALLOWED_HOSTS accepts (the test client's "testserver" may not be listed)."""
    from django.conf import settings

    for host in settings.ALLOWED_HOSTS:
        if host not in ("*", "") and not host.startswith("."):
            return host
    return "testserver"


class InProcessTransport:
    """The same API through Django's test Client (no server needed); each thread has its own client."""

    def __init__(self):
        from django.test import Client

        self._client_class = Client
        self._local = threading.local()

    def request(self, method, path, token=None, payload=None):
        if not hasattr(self._local, "client"):
            self._local.client = self._client_class(HTTP_USER_AGENT=USER_AGENT, HTTP_HOST=_allowed_host())
        extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        if method == "GET":
            response = self._local.client.get(path, **extra)
        else:
            response = self._local.client.post(path, data=json.dumps(payload or {}),
                                               content_type="application/json", **extra)
        return response.status_code, response.content.decode()

    def close_thread(self):
        connections.close_all()


class SimulationError(Exception):
    pass


class HandIn(Exception):
    """The run ended while the worker was on a page: it sends what it did until done_ms into it, then submits."""

    def __init__(self, done_ms=None):
        super().__init__("hand in")
        self.done_ms = done_ms


class VirtualTime:
    """Nothing waits: the worker's clock runs ahead of the wall clock (simulate_crowd, the demo, tests).

    A paced run (benchmarks/campaign.py) gives its own: start_page() -> the page's start, wait(page_start, ms) until
    ms into the page and pause(ms) take real time and may raise HandIn."""

    def start_page(self, clock):
        return None

    def wait(self, page_start, until_ms):
        pass

    def pause(self, ms):
        pass


class Observer:
    """What a run keeps of each request and of what the server acknowledged, beyond the outcome (a benchmark's
    latencies per request type and ledger); this one keeps nothing."""

    def attempt(self, kind, ms, status, ok):
        pass

    def retry(self, kind):
        pass

    def failure(self, kind, path, status, body):
        pass

    def flushed(self, index, batch_id, n_events):
        pass

    def saved(self, index, save_id, n_records):
        pass

    def submitted(self, partial, completion_code, pages_saved):
        pass


@dataclass
class AssignmentOutcome:
    worker: str
    profile: str
    hit_id: int
    status: str  # "submitted", "refused" or "failed"
    n_pages: int = 0
    pages_saved: int = 0
    partial: bool = False
    events: int = 0
    completion_code: str | None = None
    latencies_ms: list = field(default_factory=list)
    error: str = ""


class _Session:
    """One worker's requests on one assignment, timed, retried as the task page retries them."""

    def __init__(self, transport, outcome, observer, retry_for_s):
        self.transport, self.outcome, self.observer, self.retry_for_s = transport, outcome, observer, retry_for_s
        self.token = self.api = None

    def call(self, kind, method, path, payload=None, expect=(200, 201)):
        """One request; no answer, 408, 429 and 5xx are retried with the same body (writes are idempotent) after
        1 s, 2 s, 4 s ... at most 30 s apart (with jitter), until retry_for_s have passed."""
        give_up = time.monotonic() + self.retry_for_s
        backoff = RETRY_FIRST_S
        while True:
            started = time.perf_counter()
            try:
                status, body = self.transport.request(method, path, self.token, payload)
            except requests.RequestException as error:
                status, body = None, f"{type(error).__name__}: {error}"
            ms = (time.perf_counter() - started) * 1000
            self.outcome.latencies_ms.append(ms)
            ok = status in expect
            self.observer.attempt(kind, ms, status, ok)
            if ok:
                return status, body
            if status is not None and status not in (408, 429) and status < 500:
                self.observer.failure(kind, path, status, body)
                raise SimulationError(f"{method} {path}: HTTP {status}: {body[:300]}")
            if time.monotonic() + backoff > give_up:
                self.observer.failure(kind, path, status, body)
                raise SimulationError(f"{method} {path}: gave up after {self.retry_for_s} s: {status} {body[:200]}")
            self.observer.retry(kind)
            logger.info("retrying %s %s after %s: %s", method, path, status, body[:120])
            time.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(RETRY_MAX_S, backoff * 2)

    def api_call(self, kind, method, path, payload=None):
        return json.loads(self.call(kind, method, f"{self.api}/{path}", payload)[1])


class Clock:
    """A worker's virtual clock in epoch ms: advancing it costs no real time."""

    def __init__(self, start_ms):
        self.now = start_ms

    def advance(self, ms):
        self.now += max(1, int(ms))
        return self.now


# ---- behaviour: where the pointer goes ----

def _clip(value):
    return min(1.0, max(0.0, value))


def _aimed_point(truth, objects, profile, rng, on_object):
    """A click or drop point (fractions of the displayed image) following the profile's habits."""
    if profile.click_mode == "centre":
        return _clip(0.5 + rng.gauss(0, 0.004)), _clip(0.5 + rng.gauss(0, 0.004))
    if profile.click_mode == "random" or not objects or rng.random() >= on_object:
        return rng.uniform(0.02, 0.98), rng.uniform(0.02, 0.98)
    _, (bx, by, bw, bh), segmentation = rng.choice(objects)
    cx, cy = bx + bw / 2, by + bh / 2
    for _ in range(40):
        # People aim at the middle of an object; the spread stays mostly inside its outline.
        x = cx + rng.gauss(0, profile.aim_spread * bw / 2)
        y = cy + rng.gauss(0, profile.aim_spread * bh / 2)
        if point_on_object(x, y, segmentation, [bx, by, bw, bh]):
            return _clip(x / truth.width), _clip(y / truth.height)
    return _clip(cx / truth.width), _clip(cy / truth.height)


def _path(start, end, rng, duration_ms):
    """Pointer samples from start to end (page px): an eased, slightly curved human movement at <= 60 Hz."""
    steps = max(2, int(duration_ms / SAMPLE_MS))
    (x0, y0), (x1, y1) = start, end
    bend = rng.gauss(0, 0.12) * math.hypot(x1 - x0, y1 - y0)
    nx, ny = -(y1 - y0), x1 - x0
    norm = math.hypot(nx, ny) or 1.0
    points = []
    for i in range(1, steps + 1):
        t = i / steps
        eased = t * t * (3 - 2 * t)
        arc = math.sin(math.pi * t) * bend
        jitter = rng.gauss(0, 0.6)
        points.append((x0 + (x1 - x0) * eased + nx / norm * arc + jitter,
                       y0 + (y1 - y0) * eased + ny / norm * arc + jitter))
    return points


# ---- ImageNet-style pages ----

def _grid_layout(items, truth):
    """{candidate id: (left, top, width, height)} in CSS px, as the page's grid places the thumbnails."""
    layout = {}
    cell = THUMB_HEIGHT * 4 // 3 + GRID_GAP
    for item in items:
        image = truth.get(item["image_id"])
        ratio = (image.width / image.height) if image else 4 / 3
        width = max(1, min(round(THUMB_HEIGHT * ratio), THUMB_HEIGHT * 4 // 3))
        column, row = item["position"] % GRID_COLUMNS, item["position"] // GRID_COLUMNS
        layout[item["image_id"]] = (
            GRID_LEFT + column * cell, GRID_TOP + row * (THUMB_HEIGHT + GRID_GAP), width, THUMB_HEIGHT
        )
    return layout


def imagenet_page(content, truth, profile, rng, clock):
    """(events, records, started_at, time_spent) of one ImageNet-style page worked by this profile."""
    items = content["items"]
    layout = _grid_layout(items, truth)
    started_at = clock.now
    clock.advance(rng.uniform(2500, 6000) * profile.speed)  # reading the class and its definition
    pointer = (GRID_LEFT + 300, GRID_TOP - 60)
    events = []
    records = {}
    for item in items:
        key = item["image_id"]
        left, top, width, height = layout[key]
        records[key] = {
            "imageID": key, "selected": False, "selectedRecord": [], "deselectedRecord": [], "hoveredRecord": [],
            "mouseTracking": [], "imagePosition": {"x": left, "y": top}, "imageWidth": width, "imageHeight": height,
        }
    for item in items:  # people scan the grid row by row
        key = item["image_id"]
        image = truth.get(key)
        in_class = image is not None and bool(image.in_class)
        clock.advance(rng.uniform(180, 520) * profile.speed)  # a glance at the thumbnail
        wants = rng.random() < (profile.select_in_class if in_class else profile.select_other)
        slip = not wants and rng.random() < profile.correction_rate
        if not (wants or slip or rng.random() < profile.hover_rate):
            continue
        objects = (image.objects_of(image.label) or image.objects) if image else []
        if image:
            fx, fy = _aimed_point(image, objects, profile, rng, profile.on_object)
        else:
            fx, fy = rng.random(), rng.random()
        if not wants and not slip:
            fx, fy = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)  # just passing over it
        left, top, width, height = layout[key]
        target = (left + fx * width, top + fy * height)
        record = records[key]
        inside = False
        for px, py in _path(pointer, target, rng, rng.uniform(250, 700) * profile.speed):
            now = clock.advance(SAMPLE_MS)
            over = left <= px <= left + width and top <= py <= top + height
            if over and not inside:
                record["hoveredRecord"].append({"action": "enter", "time": now})
                events.append({"type": "hover", "image_id": key, "action": "enter", "time": now})
            if over:
                point = {"x": round(_clip((px - left) / width), 5), "y": round(_clip((py - top) / height), 5),
                         "time": now}
                record["mouseTracking"].append(point)
                events.append({"type": "move", "image_id": key, **point})
            inside = over
        if not inside:  # the last sample lands on the target, which is on the image
            now = clock.advance(SAMPLE_MS)
            record["hoveredRecord"].append({"action": "enter", "time": now})
            events.append({"type": "hover", "image_id": key, "action": "enter", "time": now})
        clicks = [True] if wants else []
        if slip:
            clicks = [True, False]
        elif wants and rng.random() < profile.correction_rate:
            clicks = [True, False, True]
        for selecting in clicks:
            now = clock.advance(rng.uniform(120, 400))
            click = {"x": round(fx, 5), "y": round(fy, 5), "time": now}
            (record["selectedRecord"] if selecting else record["deselectedRecord"]).append(click)
            record["selected"] = selecting
            events.append({"type": "click", "image_id": key, **click, "selected": selecting})
        now = clock.advance(rng.uniform(100, 350) * profile.speed)
        record["hoveredRecord"].append({"action": "leave", "time": now})
        events.append({"type": "hover", "image_id": key, "action": "leave", "time": now})
        pointer = target
    clock.advance(rng.uniform(800, 2500) * profile.speed)  # a last look before saving
    return events, [records[item["image_id"]] for item in items], started_at, clock.now - started_at


# ---- COCO-style pages ----

def coco_page(content, truth, profile, rng, clock):
    """(events, records, started_at, time_spent) of one COCO-style page: browse every group, drag icons."""
    image_info, groups = content["image"], content["groups"]
    image = truth.get(str(image_info["image_id"]))
    width = round(COCO_DISPLAY_HEIGHT * image_info["width"] / image_info["height"])
    height = COCO_DISPLAY_HEIGHT
    started_at = clock.now
    present = {o[0] for o in image.objects} if image else set()
    group_of = {c["key"]: g["index"] for g in groups for c in g["categories"]}
    to_tag = {key for key in sorted(present) if key in group_of and rng.random() < profile.select_in_class}
    absent = [key for key in group_of if key not in present]
    to_tag |= {key for key in absent if rng.random() < profile.select_other / 4}
    events, actions, visits, tracking = [], [], [], []
    t = rng.uniform(300, 900)

    def visit(group, keyboard):
        entry = {"categoryIndex": group["index"], "categoryName": group["name"], "timeAt": round(t),
                 "usingKeyboard": keyboard}
        visits.append(entry)
        events.append({"type": "category", **entry})

    def drag(start, end):
        nonlocal t
        for px, py in _path(start, end, rng, rng.uniform(400, 900) * profile.speed):
            t += SAMPLE_MS
            if 0 <= px <= width and 0 <= py <= height:
                sample = {"x": round(px / width, 5), "y": round(py / height, 5), "timeAt": round(t)}
                tracking.append(sample)
                events.append({"type": "track", **sample})

    def act(action_type, key, point_from, point_to):
        nonlocal t
        t += rng.uniform(60, 200)
        action = action_dict(action_type, key, point_from, point_to, round(t))
        actions.append(action)
        events.append({"type": "action", **action})

    placed = {}
    visit(groups[0], False)
    for group in groups:
        if group["index"]:
            t += rng.uniform(500, 1500) * profile.speed
            visit(group, rng.random() < profile.keyboard_rate)
        for category in group["categories"]:
            key = category["key"]
            if key not in to_tag:
                continue
            objects = image.objects_of(key) if image else []
            fx, fy = (_aimed_point(image, objects, profile, rng, profile.icon_on_object) if image
                      else (rng.random(), rng.random()))
            target = {"x": round(fx, 5), "y": round(fy, 5)}
            icon_at = (rng.uniform(0, width), height + rng.uniform(40, 120))  # the icon panel under the image
            t += rng.uniform(800, 2500) * profile.speed  # finding the object
            drag(icon_at, (fx * width, fy * height))
            act(ADD, key, None, target)
            placed[key] = target
            roll = rng.random()
            if roll < profile.correction_rate * 1.5:  # nudging the icon onto the object
                better_x, better_y = (_aimed_point(image, objects, profile, rng, profile.icon_on_object) if image
                                      else (fx, fy))
                better = {"x": round(better_x, 5), "y": round(better_y, 5)}
                drag((fx * width, fy * height), (better_x * width, better_y * height))
                act(MOVE, key, target, better)
                placed[key] = better
            elif roll < profile.correction_rate * 2.5:  # dropped off the image, then placed again
                drag((fx * width, fy * height), (fx * width, height + 60))
                act(REMOVE, key, target, None)
                drag(icon_at, (fx * width, fy * height))
                act(ADD, key, None, target)
    t += rng.uniform(1000, 3000) * profile.speed
    clock.advance(t)
    record = {
        "image_id": str(image_info["image_id"]), "imageWidth": width, "imageHeight": height,
        "timeSpent": round(t), "actionHistories": actions, "categoryHistories": visits, "mouseTracking": tracking,
    }
    return events, [record], started_at, round(t)


PAGE_BEHAVIOUR = {TaskKind.IMAGENET: imagenet_page, TaskKind.COCO: coco_page}


# ---- one assignment, end to end ----

def task_query(batch, hit, worker_id, market_assignment_id=None):
    """The query string a market would put on the task URL for this worker (with the market's assignment id, e.g.
    the SESSION_ID Prolific gave the participant, when there is one)."""
    if batch.provider == Provider.MTURK:
        values = {"assignmentId": market_assignment_id or f"SIM{uuid.uuid4().hex[:26].upper()}",
                  "hitId": hit.external_id or str(hit.pk), "workerId": worker_id,
                  "turkSubmitTo": "https://workersandbox.mturk.com"}
        return urlencode(values)
    names = PARAM_PRESETS["prolific"] if batch.provider == Provider.PROLIFIC else resolve_params(batch.provider_config)
    values = {"worker": worker_id, "assignment": market_assignment_id or f"{worker_id}-{hit.pk}",
              "study": hit.external_id or f"sim-{batch.name}"}
    return urlencode({name: values.get(role, role) for role, name in names.items()})


def _client_info(rng, variant, clock):
    return {
        "viewport": {"w": rng.choice([1280, 1366, 1440, 1920]), "h": rng.choice([720, 768, 900, 1080])},
        "dpr": rng.choice([1, 1, 1.25, 2]), "user_agent": USER_AGENT, "variant": variant,
        "scroll": [{"x": 0, "y": rng.choice([0, 120, 240]), "time": clock.now}],
        "visibility": [],
    }


def _event_flushes(events, offset):
    """The page's events in the flushes the page sends: FLUSH_EVERY_MS of the person's time, FLUSH_MAX_EVENTS."""
    flushes, current = [], []
    for event in events:
        if current and (len(current) >= FLUSH_MAX_EVENTS or offset(event) - offset(current[0]) > FLUSH_EVERY_MS):
            flushes.append(current)
            current = []
        current.append(event)
    if current:
        flushes.append(current)
    return flushes


def _flush(session, index, seq, events, clock):
    batch_id = str(uuid.uuid4())
    session.api_call("events", "POST", f"pages/{index}/events", {
        "batch_id": batch_id, "seq": seq, "sent_at": clock.now, "events": events,
    })
    session.outcome.events += len(events)
    session.observer.flushed(index, batch_id, len(events))


def _work_page(session, index, content, kind, variant, truth, profile, rng, clock, timing):
    """Produce the page's byproducts, flush its events when the person would have, save it. HandIn: the events
    done so far are flushed, the page is not saved."""
    page_start = timing.start_page(clock)
    events, records, started_at, time_spent = PAGE_BEHAVIOUR[kind](content, truth, profile, rng, clock)
    offset = (lambda e: e["time"] - started_at) if kind == TaskKind.IMAGENET else (lambda e: e["timeAt"])
    flushes = _event_flushes(events, offset)
    sent = 0
    try:
        for flush in flushes:
            timing.wait(page_start, offset(flush[-1]) + 50)
            _flush(session, index, sent, flush, clock)
            sent += 1
        timing.wait(page_start, time_spent)
    except HandIn as hand_in:
        done = [e for flush in flushes[sent:] for e in flush if offset(e) <= (hand_in.done_ms or 0)]
        if done:
            _flush(session, index, sent, done, clock)
        raise
    save_id = str(uuid.uuid4())
    session.api_call("save", "POST", f"pages/{index}/save", {
        "save_id": save_id, "started_at": started_at, "time_spent": time_spent,
        "client": _client_info(rng, variant, clock), "records": records,
    })
    session.observer.saved(index, save_id, len(records))


def simulate_assignment(transport, batch, hit, truth, worker_id, profile, seed=0, market_assignment_id=None, *,
                        rng=None, timing=VirtualTime(), observer=Observer(), retry_for_s=RETRY_FOR_S):
    """One worker does one HIT through the API, as the task page does: open the task link, work every page (or
    some), submit. rng: the worker's own (default: seeded by seed, HIT and worker, so a run repeats itself)."""
    rng = rng or random.Random(f"{seed}:{hit.index}:{worker_id}")
    outcome = AssignmentOutcome(worker=worker_id, profile=profile.name, hit_id=hit.pk, status="failed")
    session = _Session(transport, outcome, observer, retry_for_s)
    try:
        query = task_query(batch, hit, worker_id, market_assignment_id)
        status, html = session.call("task", "GET", f"/task/{hit.pk}/?{query}", expect=(200, 403, 409))
        if status != 200:
            outcome.status = "refused"
            return outcome
        match = BOOTSTRAP.search(html)
        if match is None:
            raise SimulationError(f"task page for HIT {hit.pk}: no bootstrap in the HTML")
        bootstrap = json.loads(match.group(1))
        session.token, session.api = bootstrap["token"], bootstrap["api"].rstrip("/")
        progress = session.api_call("assignment", "GET", "assignment")
        outcome.n_pages = progress["n_pages"]
        if progress["finished"]:
            outcome.status, outcome.completion_code = "submitted", progress["completion_code"]
            return outcome
        stop_after = outcome.n_pages
        if rng.random() < profile.skip_rate:
            stop_after = rng.randint(1, max(1, outcome.n_pages // 2))
        clock = Clock(int(time.time() * 1000))
        if bootstrap["variant"] == Batch.Variant.RED_DOT and profile.click_mode == "object":
            profile = replace(profile, on_object=min(0.98, profile.on_object + RED_DOT_AIM_GAIN))
        try:
            for index in range(outcome.n_pages):
                if index in progress["completed_pages"]:
                    outcome.pages_saved += 1
                    continue
                if outcome.pages_saved >= stop_after:
                    break
                content = session.api_call("page", "GET", f"pages/{index}")
                _work_page(session, index, content, bootstrap["kind"], bootstrap["variant"], truth, profile, rng,
                           clock, timing)
                outcome.pages_saved += 1
                pause = rng.uniform(500, 1500)
                clock.advance(pause)
                timing.pause(pause)
        except HandIn:
            pass
        outcome.partial = outcome.pages_saved < outcome.n_pages
        answer = session.api_call("submit", "POST", "submit", {"partial": outcome.partial})
        outcome.status, outcome.completion_code = "submitted", answer["completion_code"]
        observer.submitted(outcome.partial, outcome.completion_code, outcome.pages_saved)
    except (SimulationError, ValueError, KeyError) as error:
        outcome.error = str(error)
        logger.warning("worker %s on HIT %s failed: %s", worker_id, hit.pk, error)
    return outcome


# ---- a crowd ----

@dataclass
class CrowdRun:
    outcomes: list
    elapsed_s: float
    workers: dict  # worker id -> profile name

    def by_profile(self):
        table = defaultdict(Counter)
        for outcome in self.outcomes:
            table[outcome.profile][outcome.status] += 1
            table[outcome.profile]["pages"] += outcome.pages_saved
            table[outcome.profile]["events"] += outcome.events
        return table

    def latency_percentiles(self):
        latencies = sorted(ms for o in self.outcomes for ms in o.latencies_ms)
        if not latencies:
            return {"requests": 0}
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        return {"requests": len(latencies), "p50_ms": cuts[49], "p95_ms": cuts[94], "max_ms": latencies[-1]}


def hits_to_work(batch, *, limit=None, fill=None):
    """Open HITs nobody has taken yet, in order; limit caps their number, fill stops once that share has work."""
    untouched = list(
        batch.hits.filter(assignments__isnull=True).exclude(status=Hit.Status.EXPIRED).order_by("index")
    )
    if fill is not None:
        total = batch.hits.count()
        taken = total - len(untouched)
        untouched = untouched[: max(0, math.ceil(fill * total - 1e-9) - taken)]
    if limit is not None:
        untouched = untouched[:limit]
    return untouched


def run_crowd(batch, hits, *, transport, n_workers, mix, seed=0, concurrency=4, show_progress=False):
    """Workers (profiles drawn from mix) work the HITs, `concurrency` at a time; worker i takes HITs i, i+n, ..."""
    if n_workers < 1:
        raise ValueError("workers: at least one")
    rng = random.Random(seed)
    profiles = assign_profiles(n_workers, mix, rng)
    worker_ids = [f"sim{seed}-{name}-{i:03d}" for i, name in enumerate(profiles)]
    if batch.provider == Provider.MTURK:
        worker_ids = [f"A{seed}SIM{i:05d}{name.upper()}" for i, name in enumerate(profiles)]
    truth = load_ground_truth(hits)

    def work(job):
        hit, worker_index = job
        return simulate_assignment(transport, batch, hit, truth, worker_ids[worker_index],
                                   PROFILES[profiles[worker_index]], seed)

    def work_in_thread(job):
        try:
            return work(job)
        finally:
            transport.close_thread()

    jobs = [(hit, i % n_workers) for i, hit in enumerate(hits)]
    progress = tqdm(total=len(jobs), desc=f"crowd on {batch.name}", unit="HIT", disable=not show_progress)
    started = time.perf_counter()
    outcomes = []
    if concurrency <= 1:
        for job in jobs:
            outcomes.append(work(job))
            progress.update()
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in as_completed([pool.submit(work_in_thread, job) for job in jobs]):
                outcomes.append(future.result())
                progress.update()
    progress.close()
    outcomes.sort(key=lambda o: o.hit_id)
    return CrowdRun(outcomes=outcomes, elapsed_s=time.perf_counter() - started, workers=dict(zip(worker_ids, profiles)))


def decisions_by_profile(run):
    """{profile: Counter of assignment states} for the run's submitted work, read back from the database."""
    states = defaultdict(Counter)
    pairs = {(o.hit_id, o.worker): o.profile for o in run.outcomes if o.status == "submitted"}
    rows = Assignment.objects.filter(hit__in={hit for hit, _ in pairs}).values_list(
        "hit_id", "worker__external_id", "state"
    )
    for hit_id, worker, state in rows:
        if (hit_id, worker) in pairs:
            states[pairs[hit_id, worker]][state] += 1
    return states
