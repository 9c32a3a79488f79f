"""Client cost of the ImageNet-style task page in Debian chromium: what one mouse event costs the page.

    .venv/bin/python benchmarks/worker_pages.py [--hops 30] [--steps 40]

The real template and scripts are rendered and served to the browser with the worker API answered by Playwright
routes (no server, no database): one page of 48 candidates. The mouse then hops --hops times between candidates,
each hop as --steps real input events sent as fast as the browser takes them (usually faster than a mouse, so
the 60 Hz throttle has work), and the page saves.
Prints: time to draw the page, per-mousemove handler time (mean, p99, max; measured between a capturing listener
on window and a bubbling one on document, so it is the page's own work; performance.now() has 100 us steps in a
page that is not cross-origin isolated), recorded samples per second (target: at most 60), events per flushed
batch and the size of the save body.
"""
import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ORIGIN = "http://bench.test"
N_CANDIDATES = 48


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hops", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40)
    return parser.parse_args()


def render_task_page():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.template.loader import render_to_string

    bootstrap = {"token": "bench", "api": "/api/worker", "kind": "imagenet", "variant": "default", "n_pages": 1,
                 "preview": False, "market_assignment_id": None}
    context = {"bootstrap": bootstrap, "preview": False, "kind": "imagenet", "variant": "default",
               "example_page": None}
    return render_to_string("annotator/worker/task.html", context)


def jpeg(seed):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (seed * 5 % 255, 90, 200 - seed * 3 % 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def page_content():
    return {
        "index": 0, "kind": "imagenet", "saved": False,
        "category": {"key": "n0", "name": "tench", "synonyms": ["Tinca tinca"], "definition": "a fish",
                     "reference_links": []},
        "items": [{"image_id": f"img_{i}", "url": f"/media/{i}.jpg", "position": i} for i in range(N_CANDIDATES)],
        "resume": {"events": []},
    }


class MockWorkerApi:
    """Answers the worker API like the server would, keeping what the page sends."""

    def __init__(self):
        self.batches = []
        self.save_body = None

    def handle(self, route):
        request = route.request
        path = request.url.removeprefix(ORIGIN).split("?")[0]
        if path.endswith("/assignment"):
            answer = {"assignment_id": "bench", "kind": "imagenet", "variant": "default", "n_pages": 1,
                      "completed_pages": [], "current_page": 0, "finished": False, "completion_code": None}
        elif path.endswith("/pages/0"):
            answer = page_content()
        elif path.endswith("/events"):
            self.batches.append(json.loads(request.post_data))
            answer = {"stored": len(self.batches[-1]["events"])}
        elif path.endswith("/save"):
            self.save_body = request.post_data
            answer = {"saved": True, "next_page": None}
        else:
            answer = {"completion_code": "BENCH", "turk_submit_to": None, "redirect_url": None}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))


def main():
    args = parse_args()
    from playwright.sync_api import sync_playwright

    html = render_task_page()
    images = {f"/media/{i}.jpg": jpeg(i) for i in range(N_CANDIDATES)}
    api = MockWorkerApi()
    static_root = ROOT / "frontend_static"

    def serve(route):
        path = route.request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/task":
            route.fulfill(status=200, content_type="text/html", body=html)
        elif path.startswith("/static/"):
            file = static_root / path.removeprefix("/static/")
            kind = "text/css" if file.suffix == ".css" else "text/javascript"
            route.fulfill(status=200, content_type=kind, body=file.read_bytes())
        elif path in images:
            route.fulfill(status=200, content_type="image/jpeg", body=images[path])
        elif path.startswith("/api/worker/"):
            api.handle(route)
        else:
            route.fulfill(status=404, body="")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route(f"{ORIGIN}/**", serve)
        started = time.perf_counter()
        page.goto(f"{ORIGIN}/task")
        page.wait_for_function(f"() => document.querySelectorAll('img.candidate-image').length === {N_CANDIDATES}")
        page.wait_for_function("() => Array.from(document.images).every((image) => image.complete)")
        drawn_ms = (time.perf_counter() - started) * 1000
        page.evaluate("""() => {
            window.moveCosts = [];
            let startedAt = 0;
            window.addEventListener("mousemove", () => { startedAt = performance.now(); }, true);
            document.addEventListener("mousemove", () => { window.moveCosts.push(performance.now() - startedAt); });
        }""")
        boxes = page.locator("img.candidate-image").evaluate_all(
            "images => images.slice(0, 16).map((image) => { const b = image.getBoundingClientRect();"
            " return [b.left + b.width / 2, b.top + b.height / 2]; })"
        )
        sweep_started = time.perf_counter()
        for hop in range(args.hops):
            x, y = boxes[(hop * 7) % len(boxes)]
            page.mouse.move(x + hop % 9 - 4, y + hop % 5 - 2, steps=args.steps)
        sweep_seconds = time.perf_counter() - sweep_started
        costs = page.evaluate("window.moveCosts")
        page.click("#save-page")
        page.wait_for_selector("#done:not([hidden])")
        browser.close()

    records = json.loads(api.save_body)["records"]
    samples = sorted(s["time"] for r in records for s in r["mouseTracking"])
    span_s = (samples[-1] - samples[0]) / 1000 if len(samples) > 1 else float("nan")
    costs_us = sorted(cost * 1000 for cost in costs)
    events_per_batch = [len(batch["events"]) for batch in api.batches]
    print(f"page drawn (48 candidates, images loaded): {drawn_ms:.0f} ms")
    print(f"mousemove events delivered: {len(costs)} in {sweep_seconds:.1f} s "
          f"({len(costs) / sweep_seconds:.0f} per s)")
    print(f"handler time per mousemove: mean {statistics.mean(costs_us):.1f} us, "
          f"p99 {costs_us[int(0.99 * (len(costs_us) - 1))]:.1f} us, max {costs_us[-1]:.1f} us")
    print(f"trace samples recorded: {len(samples)} over {span_s:.2f} s = {len(samples) / span_s:.1f} per s "
          f"(limit 60); smallest gap {min(b - a for a, b in zip(samples, samples[1:]))} ms")
    print(f"event batches flushed: {len(events_per_batch)}, events per batch: max {max(events_per_batch)}")
    print(f"save body: {len(api.save_body) / 1024:.1f} KiB for {len(records)} records")


if __name__ == "__main__":
    main()
