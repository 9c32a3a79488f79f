"""Shared fixtures of the real-browser tests: Debian chromium through Playwright, HITs with real little images."""
import html
import io
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.signals import request_finished, request_started
from django.urls import reverse
from PIL import Image as PilImage
from PIL import ImageDraw

from annotator.images import display_name
from annotator.models import Batch, Hit, PageItem, TaskKind
from benchmarks import support
from tests.factories import (
    BatchFactory, CategoryFactory, DatasetFactory, HitFactory, HitPageFactory, ImageFactory,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("CI"):  # in CI a missing browser fails the run: 31 skipped tests must not look green
            pytest.fail(message)
        pytest.skip(message)
    # While Playwright's sync API runs its event loop in this thread, the tests' ORM calls are still synchronous.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def browser_context_factory(browser):
    contexts = []

    def make(**options):
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        track_requests_in_flight(context)
        watch_csp_violations(context)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        for page in context.pages:
            quiet(page)
        wait_for_requests_in_flight(context)
        context.close()
    served_requests.wait_until_idle()
    violations = [violation for context in contexts for violation in context.csp_violations]
    assert not violations, f"the pages broke their Content-Security-Policy: {violations}"


# Every page, in every frame: a Content-Security-Policy violation is logged as a console error the test collects.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = event.sourceFile ? ` (${event.sourceFile}:${event.lineNumber})` : "";
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI || "?"}${where}`);
});
"""


def watch_csp_violations(context):
    """context.csp_violations: every CSP violation its pages reported; a test that provokes one clears it."""
    context.csp_violations = []
    context.add_init_script(REPORT_CSP_VIOLATIONS)

    def collect(message):
        if message.type == "error" and message.text.startswith("CSP violation:"):
            context.csp_violations.append(f"{message.page.url if message.page else '?'}: {message.text}")

    context.on("console", collect)


class ServedRequests:
    """Requests the live server is still serving, counted by Django's request signals.

    Closing a browser context does not stop the server: a request the browser gave up on still runs in a live
    server thread. The test's database is emptied (TRUNCATE) right after the fixtures' teardown, and a request
    writing at that moment deadlocks with it ("Database test_luab couldn't be flushed", seen in CI). So the
    teardown waits until no request has been in progress for a short while.
    """

    def __init__(self):
        self.active = 0
        self.last_change = time.monotonic()
        self.changed = threading.Condition()

    def started(self, **kwargs):
        if self.in_test_thread():
            return
        with self.changed:
            self.active += 1
            self.last_change = time.monotonic()

    def finished(self, **kwargs):
        if self.in_test_thread():
            return
        with self.changed:
            self.active = max(0, self.active - 1)
            self.last_change = time.monotonic()
            self.changed.notify_all()

    @staticmethod
    def in_test_thread():
        """The test client's requests (and in-process WSGI calls) run in the tests' own thread, the live server's
        in threads of its own: only those count."""
        return threading.current_thread() is threading.main_thread()

    def wait_until_idle(self, quiet_s=0.3, timeout_s=15.0):
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while time.monotonic() < deadline:
                idle_for = time.monotonic() - self.last_change
                if self.active == 0 and idle_for >= quiet_s:
                    return
                self.changed.wait(timeout=quiet_s if self.active == 0 else 0.05)
        raise AssertionError(f"the live server was still serving {self.active} request(s) after {timeout_s} s")


served_requests = ServedRequests()
request_started.connect(served_requests.started, dispatch_uid="e2e-served-requests-started")
request_finished.connect(served_requests.finished, dispatch_uid="e2e-served-requests-finished")


def track_requests_in_flight(context):
    context.in_flight = set()
    context.on("request", lambda request: context.in_flight.add(request))
    context.on("requestfinished", lambda request: context.in_flight.discard(request))
    context.on("requestfailed", lambda request: context.in_flight.discard(request))


def wait_for_requests_in_flight(context, timeout_s=5.0):
    """Let a flush the page had already sent finish before the test's database is emptied: the live server would
    otherwise serve it during the teardown (a blocked database, or a deadlock with the flush of the tables)."""
    if not context.pages:
        return
    deadline = time.monotonic() + timeout_s
    while context.in_flight and time.monotonic() < deadline:
        context.pages[0].wait_for_timeout(50)  # Playwright delivers the request events while it waits


# Run in every frame of a page before the test's teardown closes it: no more timed flushes, and no pagehide or
# visibility handler, so the closing page sends nothing. Otherwise its beacon could reach the live server while
# the database is being flushed for the next test (seen once: "deadlock detected" in a teardown flush).
QUIET = """
() => {
  const stop = (event) => event.stopImmediatePropagation();
  for (const type of ["pagehide", "visibilitychange", "beforeunload", "unload"]) {
    window.addEventListener(type, stop, true);
    document.addEventListener(type, stop, true);
  }
  const last = setTimeout(() => {}, 0);
  // Timer ids count up from 1, or from 1e12 under Playwright's fake clock (page.clock): the latest 100,000 will do.
  for (let id = Math.max(0, last - 100000); id <= last; id += 1) {
    clearTimeout(id);
    clearInterval(id);
  }
}
"""


def quiet(page):
    for frame in page.frames:
        try:
            frame.evaluate(QUIET)
        except Exception:  # a frame already gone (or not scriptable) sends nothing either
            pass


@pytest.fixture
def page(browser_context_factory):
    return browser_context_factory().new_page()


def jpeg_bytes(width, height, seed):
    """A small picture: a coloured background with a differently coloured box (the "object")."""
    background = ((seed * 53) % 200 + 30, (seed * 97) % 200 + 30, (seed * 31) % 200 + 30)
    picture = PilImage.new("RGB", (width, height), background)
    ImageDraw.Draw(picture).rectangle(
        [width // 4, height // 4, 3 * width // 4, 3 * height // 4], fill=(255 - background[0], 200, 40)
    )
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def make_image(dataset, key, width, height, seed, **fields):
    data = jpeg_bytes(width, height, seed)
    return ImageFactory(
        dataset=dataset, key=key, width=width, height=height,
        file=ContentFile(data, name=f"{key}.jpg"), display_file=ContentFile(data, name=display_name()), **fields,
    )


def publish(batch, **hit_fields):
    batch.status = Batch.Status.PUBLISHED
    batch.save()
    return HitFactory(batch=batch, index=0, status=Hit.Status.PUBLISHED, **hit_fields)


def make_imagenet_hit(items_per_page=(48, 6), variant=Batch.Variant.DEFAULT, **batch_fields):
    """A published ImageNet-style HIT, one class per page, with the given number of candidates on each page."""
    dataset = DatasetFactory(kind=TaskKind.IMAGENET)
    batch = BatchFactory(
        dataset=dataset, task_kind=TaskKind.IMAGENET, pages_per_hit=len(items_per_page),
        items_per_page=max(items_per_page), interface_variant=variant, **batch_fields,
    )
    hit = publish(batch)
    seed = 0
    for page_index, n_items in enumerate(items_per_page):
        category = CategoryFactory(
            dataset=dataset, name=f"test class {page_index}", synonyms=[f"synonym {page_index}"],
            definition=f"the definition of test class {page_index}",
        )
        page = HitPageFactory(hit=hit, index=page_index, category=category)
        for position in range(n_items):
            seed += 1
            image = make_image(dataset, f"{category.key}_{position}", 160, 120, seed, label=category)
            PageItem.objects.create(page=page, image=image, position=position, in_class=position % 4 != 3)
    return hit


COCO_GROUPS = {
    "animal": ["cat", "dog", "horse"],
    "vehicle": ["car", "bicycle"],
    "kitchen": ["cup", "fork", "bowl"],
}


def make_coco_hit(n_pages=2, variant=Batch.Variant.DEFAULT, **batch_fields):
    """A published COCO-style HIT: 3 groups of categories (by supercategory), one image per page."""
    dataset = DatasetFactory(kind=TaskKind.COCO)
    index = 0
    for supercategory, names in COCO_GROUPS.items():
        for name in names:
            index += 1
            CategoryFactory(dataset=dataset, key=str(index), index=index - 1, name=name, supercategory=supercategory)
    batch = BatchFactory(
        dataset=dataset, task_kind=TaskKind.COCO, pages_per_hit=n_pages, items_per_page=1,
        interface_variant=variant, **batch_fields,
    )
    hit = publish(batch)
    for page_index in range(n_pages):
        image = make_image(dataset, str(1000 + page_index), 640, 480, page_index + 7)
        HitPageFactory(hit=hit, index=page_index, image=image)
    return hit


def task_url(live_server, hit, worker_id="WORKER1", assignment_id="ASSIGNMENT1", **extra):
    params = {"workerId": worker_id, "assignmentId": assignment_id, "hitId": hit.external_id or str(hit.pk), **extra}
    return f"{live_server.url}{reverse('worker-task', args=[hit.pk])}?{urlencode(params)}"


def wait_for_images(page):
    """Wait until the page drew its images and every one has loaded.

    Waits take a function, never a bare expression: Playwright polls an expression with eval, which the pages'
    Content-Security-Policy forbids.

    At least one image: the task page draws its content after fetching it, so right after page.goto() there are
    no images yet, and every() of nothing is true (a click then could land on an image still 0 px wide).
    """
    page.wait_for_function(
        "() => document.images.length > 0"
        " && Array.from(document.images).every((image) => image.complete && image.naturalWidth > 0)"
    )


# Test instrumentation: every fetch the page makes, with its start (ms on the page clock) and how it ended.
LOG_FETCHES = """
(() => {
  window.fetchLogForTest = [];
  const realFetch = window.fetch.bind(window);
  window.fetch = (url, init) => {
    const entry = { url: String(url), method: (init && init.method) || "GET", start: performance.now() };
    window.fetchLogForTest.push(entry);
    return realFetch(url, init).then(
      (response) => { entry.status = response.status; return response; },
      (failure) => { entry.failed = true; throw failure; },
    );
  };
})();
"""


def point_in(locator, fx, fy):
    """Page (viewport) coordinates of the point at fractions (fx, fy) of an element's box."""
    box = locator.bounding_box()
    return box["x"] + fx * box["width"], box["y"] + fy * box["height"]


def click_at(locator, fx, fy):
    box = locator.bounding_box()
    locator.click(position={"x": fx * box["width"], "y": fy * box["height"]})


def wait_until(condition, timeout=20.0, interval=0.2, message="condition"):
    """Poll the database (written by the live server thread) until condition() is true."""
    value = support.wait_until(condition, timeout, poll_s=interval)
    if not value:
        raise AssertionError(f"timed out waiting for {message}")
    return value


def stored_events(assignment, page_index):
    """Every event the server journalled for one page, in seq order, with the batches' client ids."""
    from annotator.models import EventBatch

    batches = EventBatch.objects.filter(assignment=assignment, page__index=page_index).order_by("seq")
    return [event for batch in batches for event in batch.events]


class MarketHandler(BaseHTTPRequestHandler):
    """Plays the crowd market: GET /hit?task=<url> frames the task page; other GETs (completion links) and
    POST /mturk/externalSubmit are kept in server.visits / server.submissions."""

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/hit":
            task = html.escape(parse_qs(url.query)["task"][0])
            body = (
                "<!doctype html><link rel=\"icon\" href=\"data:,\"><title>Market</title><h1>A HIT</h1>"
                f'<iframe id="task" src="{task}" width="1200" height="800"></iframe>'
            )
        else:
            self.server.visits.append(self.path)
            body = '<!doctype html><link rel="icon" href="data:,"><title>Market</title><p>Study complete.</p>'
        self.reply(body.encode())

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.server.submissions.append((self.path, parse_qs(self.rfile.read(length).decode())))
        self.reply(b"<p>Thank you, the market has your assignment.</p>")

    def log_message(self, format, *args):
        pass


@pytest.fixture
def market_server():
    """A local server on another origin than the task pages (127.0.0.1 vs localhost), in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), MarketHandler)
    server.submissions = []
    server.visits = []
    server.origin = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def record_sends(page):
    """Every request the page makes that is not a GET (API writes, beacons), as "METHOD url". Call before goto: it
    also puts the page on Playwright's clock, for leave_after_every_timer."""
    page.clock.install()
    sent = []
    page.on("request", lambda request: sent.append(f"{request.method} {request.url}") if request.method != "GET"
            else None)
    return sent


def leave_after_every_timer(page, run_for_ms=60_000):
    """Run the page's timers a minute ahead (every periodic flush and retry would fire), then leave it (pagehide
    would send a beacon): what a preview must not send, it has tried to send by now."""
    page.clock.run_for(run_for_ms)
    page.goto("about:blank")
