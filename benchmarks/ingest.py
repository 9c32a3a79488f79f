"""Load test of the worker ingestion path: gunicorn + PostgreSQL, load generator on the same machine.

    .venv/bin/python benchmarks/ingest.py [--database-url postgres://postgres@127.0.0.1:5432/luab_bench_ingest]

It (re)creates its own PostgreSQL database, migrates it, packs ImageNet-style and COCO-style HITs, starts gunicorn
on a free port and runs:
  A. 50 concurrent workers, each saving a page every second (an offered load of 50 saves/s; ImageNet-style:
     48 records, ~60 trace samples and 2 hover events per image, ~40% selected; then COCO-style pages), reporting
     the held saves/s and p50/p95/p99 latency, measured from when each save was due (a late start counts);
  S. the same workers saving as fast as the server answers: the capacity in saves/s (latency here is only
     queueing: 50 workers / throughput);
  B. 500 concurrent workers, each flushing a small event batch every 5 s, reporting p50/p95/p99.
About 5% of the requests are sent twice (a client retry); afterwards the stored counts must equal what was sent,
with no duplicates. Prints its figures; targets: >= 50 saves/s with p99 < 300 ms, flush p99 < 200 ms.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import IN_CLASS_PER_PAGE, ITEMS_PER_PAGE, PAGES_PER_HIT  # noqa: E402
from benchmarks.support import free_port, fresh_database, setup_django  # noqa: E402

TRACE_SAMPLES = 60
SELECTED_SHARE = 0.4
RETRY_SHARE = 0.05
EVENTS_PER_FLUSH = 20
# Tokens are made here and checked by gunicorn: both sides sign with this key.
BENCH_SECRET_KEY = "benchmark-only-secret-key-" + "x" * 40
FLUSH_INTERVAL_S = 5.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/luab_bench_ingest")
    parser.add_argument("--save-workers", type=int, default=50, help="scenario A: concurrent workers")
    parser.add_argument("--flush-workers", type=int, default=500, help="scenario B: concurrent workers")
    parser.add_argument("--flush-seconds", type=float, default=30.0, help="scenario B: how long to run")
    parser.add_argument("--save-interval", type=float, default=1.0, help="scenario A: seconds between a worker's saves")
    parser.add_argument("--scenarios", default="A,S,B",
                        help="which scenarios to run: A (paced page saves), S (saturating page saves), B (flushes)")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=4)
    return parser.parse_args()


def pack_hits(n_hits, max_assignments):
    """n_hits ImageNet-style and n_hits COCO-style HITs of PAGES_PER_HIT pages each (pages share images across HITs)."""
    from annotator import models

    imagenet = models.Dataset.objects.create(name="bench-imagenet", kind=models.TaskKind.IMAGENET)
    classes = [
        models.Category.objects.create(dataset=imagenet, key=f"n{i:08d}", index=i, name=f"class {i}")
        for i in range(PAGES_PER_HIT + 1)
    ]
    page_images = []
    for p in range(PAGES_PER_HIT):
        images = [
            models.Image(
                dataset=imagenet, key=f"{classes[p].key}_{k}", file=f"images/{p}_{k}.JPEG",
                display_file=f"display/{p:016x}{k:016x}.jpg", width=500, height=375,
                label=classes[p] if k < IN_CLASS_PER_PAGE else classes[-1],
            )
            for k in range(ITEMS_PER_PAGE)
        ]
        page_images.append(models.Image.objects.bulk_create(images))
    coco = models.Dataset.objects.create(name="bench-coco", kind=models.TaskKind.COCO)
    groups = ["person", "vehicle", "outdoor", "animal", "accessory", "sports", "kitchen", "food", "furniture",
              "electronic", "appliance", "indoor"]
    coco_categories = [
        models.Category.objects.create(
            dataset=coco, key=str(i + 1), index=i, name=f"category {i + 1}", supercategory=groups[i * 12 // 80]
        )
        for i in range(80)
    ]
    coco_images = []
    for p in range(PAGES_PER_HIT):
        image = models.Image.objects.create(dataset=coco, key=str(5000 + p), file=f"images/{p}.jpg",
                                            display_file=f"display/{p:032x}.jpg", width=640, height=480)
        for c in coco_categories[p * 3:p * 3 + 3]:
            models.GroundTruthObject.objects.create(
                image=image, category=c, bbox=[100, 100, 200, 200], area=40000,
                segmentation=[[100, 100, 300, 100, 300, 300, 100, 300]],
            )
        coco_images.append(image)
    hits = {"imagenet": [], "coco": []}
    for kind, dataset in (("imagenet", imagenet), ("coco", coco)):
        batch = models.Batch.objects.create(
            name=f"bench-{kind}", dataset=dataset, task_kind=kind, status=models.Batch.Status.PUBLISHED,
            pages_per_hit=PAGES_PER_HIT, items_per_page=ITEMS_PER_PAGE if kind == "imagenet" else 1,
        )
        for h in range(n_hits):
            hit = models.Hit.objects.create(batch=batch, index=h, status=models.Hit.Status.PUBLISHED,
                                            max_assignments=max_assignments)
            pages = models.HitPage.objects.bulk_create([
                models.HitPage(hit=hit, index=p, category=classes[p] if kind == "imagenet" else None,
                               image=coco_images[p] if kind == "coco" else None)
                for p in range(PAGES_PER_HIT)
            ])
            if kind == "imagenet":
                models.PageItem.objects.bulk_create([
                    models.PageItem(page=page, image=image, position=k, in_class=k < IN_CLASS_PER_PAGE)
                    for page in pages for k, image in enumerate(page_images[page.index])
                ])
            hits[kind].append(hit)
    return hits


def page_ids(hit):
    """{page index: the ids the page gives its images} (candidate ids in grid order; a COCO page: [its image's]),
    from the server's own mapping: the pages never name an image by its key."""
    from annotator.worker.selectors import page_candidates, page_image_id

    return {
        page.index: [page_image_id(page, hit.candidate_key)] if page.image_id else
        list(page_candidates(page, hit.candidate_key))
        for page in hit.pages.all()
    }


def accept(hit, worker_id):
    from annotator.worker.services import accept_assignment
    from annotator.worker.tokens import make_token

    return make_token(accept_assignment(hit, worker_id, f"bench-{worker_id}"))


def now_ms():
    return int(time.time() * 1000)


def imagenet_page_body(keys, rng):
    start = now_ms() - 120_000
    records = []
    for position, key in enumerate(keys):
        t = start + position * 1_000
        selected = rng.random() < SELECTED_SHARE
        tracking = [
            {"x": round(rng.random(), 4), "y": round(rng.random(), 4), "time": t + 17 * i}
            for i in range(TRACE_SAMPLES)
        ]
        records.append({
            "imageID": key, "selected": selected,
            "selectedRecord": [{"x": round(rng.random(), 4), "y": round(rng.random(), 4), "time": t + 600}]
            if selected else [],
            "deselectedRecord": [],
            "hoveredRecord": [{"action": "enter", "time": t}, {"action": "leave", "time": t + 1_000}],
            "mouseTracking": tracking,
            "imagePosition": {"x": 20 + 170 * (position % 8), "y": 300 + 140 * (position // 8)},
            "imageWidth": 160, "imageHeight": 120,
        })
    return {
        "save_id": str(uuid.uuid4()), "started_at": start, "time_spent": 60_000,
        "client": {"viewport": {"w": 1440, "h": 900}, "dpr": 2, "user_agent": "bench", "variant": "default",
                   "scroll": [{"x": 0, "y": 400, "time": start + 30_000}], "visibility": []},
        "records": records,
    }


def coco_page_body(image_id, rng):
    actions, t = [], 2_000
    for key in rng.sample([str(i) for i in range(1, 81)], 3):
        actions.append({"actionType": "add", "iconType": key, "pointFrom": None,
                        "pointTo": {"x": round(rng.random(), 4), "y": round(rng.random(), 4)}, "timeAt": t})
        t += 1_500
    actions.append({"actionType": "move", "iconType": actions[0]["iconType"], "pointFrom": actions[0]["pointTo"],
                    "pointTo": {"x": 0.3, "y": 0.3}, "timeAt": t})
    return {
        "save_id": str(uuid.uuid4()), "started_at": now_ms() - 30_000, "time_spent": 25_000,
        "client": {"viewport": {"w": 1440, "h": 900}, "dpr": 1, "user_agent": "bench", "variant": "default"},
        "records": [{
            "image_id": image_id, "imageWidth": 600, "imageHeight": 450, "timeSpent": 25_000,
            "actionHistories": actions,
            "categoryHistories": [{"categoryIndex": g, "categoryName": "g", "timeAt": 500 + 100 * g,
                                   "usingKeyboard": g % 2 == 0} for g in range(12)],
            "mouseTracking": [{"x": round(rng.random(), 4), "y": round(rng.random(), 4), "timeAt": 100 + 17 * i}
                              for i in range(300)],
        }],
    }


def event_flush_body(keys, seq, rng):
    t = now_ms() - 5_000
    events = []
    for i in range(EVENTS_PER_FLUSH):
        key = rng.choice(keys)
        events.append({"type": "move", "image_id": key, "x": round(rng.random(), 4), "y": round(rng.random(), 4),
                       "time": t + 17 * i})
    events.append({"type": "click", "image_id": keys[0], "x": 0.5, "y": 0.5, "time": t + 400, "selected": True})
    return {"batch_id": str(uuid.uuid4()), "seq": seq, "sent_at": now_ms(), "events": events}


def start_gunicorn(args, database_url, port):
    env = {
        **os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "false", "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECRET_KEY": BENCH_SECRET_KEY, "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING", "WORKER_API_RATE": "100000/min",
        "VAR_DIR": os.environ.get("VAR_DIR", "/tmp/luab-bench-var"),
    }
    # The deployment's settings (config/gunicorn.conf.py: the deadline thread worker, access log) with this
    # benchmark's process and thread counts.
    command = [
        str(ROOT / ".venv/bin/gunicorn"), "-c", "config/gunicorn.conf.py", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.gunicorn_workers), "--threads", str(args.gunicorn_threads),
        "--log-level", "warning", "--timeout", "300", "--keep-alive", "10",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/worker/assignment", timeout=10)
            return server
        except requests.RequestException:
            time.sleep(0.5)
    stop(server)
    raise SystemExit("gunicorn did not answer within 120 s")


def stop(server):
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def percentiles(latencies):
    ordered = sorted(latencies)

    def at(share):
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    return at(0.50), at(0.95), at(0.99)


def server_cpu_seconds(server):
    """User + system CPU time of gunicorn's worker processes so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class Tally:
    """Latencies and failures; a dropped connection is retried with the same body, as the task page does."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies, self.failures, self.reconnects = [], [], 0

    def post(self, session, url, token, data, due=None):
        """POST with retries; the latency counts from `due` (when the request should have gone out) if given."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = min(due, time.perf_counter()) if due is not None else time.perf_counter()
        for attempt in range(5):
            try:
                response = session.post(url, data=data, headers=headers, timeout=120)
                break
            except requests.ConnectionError:
                with self.lock:
                    self.reconnects += 1
                time.sleep(0.5 * 2**attempt)
        else:
            raise SystemExit(f"{url}: no answer after 5 attempts")
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies.append(elapsed)
            if response.status_code not in (200, 201):
                self.failures.append((url, response.status_code, response.text[:200]))
        return response

    def summary(self, wall, cpu_seconds):
        p50, p95, p99 = percentiles(self.latencies)
        n = len(self.latencies)
        return (f"{n} requests in {wall:.1f} s = {n / wall:.1f}/s; latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
                f"p99 {p99:.0f} ms; server CPU {1000 * cpu_seconds / n:.1f} ms per request; "
                f"{len(self.failures)} failures, {self.reconnects} reconnects")


def run_threads(targets):
    threads = [threading.Thread(target=target) for target in targets]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def scenario_saves(server, base, kind, tokens_and_ids, build_page, rng_seed, interval=None):
    """Every worker saves its HIT's pages in order, one every `interval` seconds (start times spread over one
    interval), or as fast as the server answers when interval is None; a few saves are retried.
    tokens_and_ids: (token, page_ids() of its HIT) per worker."""
    tally = Tally()
    sent = {"records": 0, "saves": 0}
    lock = threading.Lock()

    def worker(token, seed, bodies):
        rng = random.Random(seed)
        session = requests.Session()
        due = time.perf_counter() + (rng.random() * interval if interval else 0)
        for page, (data, n_records) in enumerate(bodies):
            if interval:
                time.sleep(max(0.0, due - time.perf_counter()))
            url = f"{base}/api/worker/pages/{page}/save"
            tally.post(session, url, token, data, due=due if interval else None)
            if rng.random() < RETRY_SHARE:
                tally.post(session, url, token, data)
            with lock:
                sent["saves"] += 1
                sent["records"] += n_records
            due += interval or 0

    # Bodies are built and encoded before the clock starts: the load generator shares the machine's CPU.
    rng = random.Random(rng_seed)
    bodies = []
    tokens = [token for token, _ in tokens_and_ids]
    for _, hit_ids in tokens_and_ids:
        pages = [build_page(hit_ids, page, rng) for page in range(PAGES_PER_HIT)]
        bodies.append([(json.dumps(body).encode(), len(body["records"])) for body in pages])
    cpu_before = server_cpu_seconds(server)
    wall = run_threads([
        lambda t=t, s=rng_seed + i, b=b: worker(t, s, b) for i, (t, b) in enumerate(zip(tokens, bodies))
    ])
    cpu = server_cpu_seconds(server) - cpu_before
    pace = f"one save every {interval:g} s each" if interval else "saving as fast as answered"
    print(f"{'A' if interval else 'S'}/{kind}: {len(tokens)} workers {pace}, {sent['saves']} page saves + "
          f"{len(tally.latencies) - sent['saves']} deliberate retries: {tally.summary(wall, cpu)}")
    for failure in tally.failures[:5]:
        print("   failure:", failure)
    return sent, tally


def scenario_flushes(server, base, tokens_and_keys, seconds):
    """Every worker flushes a small batch every FLUSH_INTERVAL_S (start times spread over one interval)."""
    tally = Tally()
    sent = {"batches": 0, "events": 0}
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def worker(token, keys, seed):
        rng = random.Random(seed)
        session = requests.Session()
        time.sleep(rng.random() * FLUSH_INTERVAL_S)
        seq = 0
        while time.time() < stop_at:
            tick = time.time()
            seq += 1
            body = event_flush_body(keys, seq, rng)
            data = json.dumps(body).encode()
            tally.post(session, f"{base}/api/worker/pages/0/events", token, data)
            if rng.random() < RETRY_SHARE:
                tally.post(session, f"{base}/api/worker/pages/0/events", token, data)
            with lock:
                sent["batches"] += 1
                sent["events"] += len(body["events"])
            time.sleep(max(0.0, FLUSH_INTERVAL_S - (time.time() - tick)))

    cpu_before = server_cpu_seconds(server)
    wall = run_threads([lambda t=t, k=k, s=i: worker(t, k, s) for i, (t, k) in enumerate(tokens_and_keys)])
    cpu = server_cpu_seconds(server) - cpu_before
    print(f"B: {len(tokens_and_keys)} workers flushing {EVENTS_PER_FLUSH + 1} events every {FLUSH_INTERVAL_S:.0f} s: "
          f"{tally.summary(wall, cpu)}")
    for failure in tally.failures[:5]:
        print("   failure:", failure)
    return sent, tally


def warm_up(base, token, n_threads, requests_per_thread=20):
    """Let every gunicorn thread serve a few reads first (imports, URL resolver, database connection), as a
    running deployment has; the workers' own first saves and flushes are still measured cold."""
    def reads():
        session = requests.Session()
        for _ in range(requests_per_thread):
            session.get(f"{base}/api/worker/assignment", headers={"Authorization": f"Bearer {token}"}, timeout=60)

    run_threads([reads] * (2 * n_threads))


def verify(sent_imagenet, sent_coco, sent_events):
    from django.db import connection
    from django.db.models import Count

    from annotator import models

    connection.close()
    stored = {
        "ImageNet records": models.ImageNetRecord.objects.count(),
        "COCO records": models.CocoRecord.objects.count(),
        "page submissions": models.PageSubmission.objects.count(),
        "event batches": models.EventBatch.objects.count(),
        "events": sum(len(events) for events in models.EventBatch.objects.values_list("events", flat=True)),
    }
    expected = {
        "ImageNet records": sent_imagenet["records"], "COCO records": sent_coco["records"],
        "page submissions": sent_imagenet["saves"] + sent_coco["saves"],
        "event batches": sent_events["batches"], "events": sent_events["events"],
    }
    duplicates = (
        models.ImageNetRecord.objects.values("assignment", "page", "image").annotate(n=Count("id")).filter(n__gt=1)
        .count()
        + models.EventBatch.objects.values("assignment", "client_batch_id").annotate(n=Count("id")).filter(n__gt=1)
        .count()
    )
    ok = stored == expected and duplicates == 0
    for name, count in stored.items():
        print(f"   stored {name}: {count} (sent {expected[name]})")
    print(f"verify: {'OK' if ok else 'MISMATCH'}: stored == sent, {duplicates} duplicates")
    return ok


def main():
    args = parse_args()
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start; gunicorn {args.gunicorn_workers} gthread workers x "
          f"{args.gunicorn_threads} threads; load generator on the same machine")
    fresh_database(args.database_url)
    setup_django(args.database_url, DJANGO_SECRET_KEY=BENCH_SECRET_KEY)
    per_hit = max(1, -(-args.flush_workers // args.save_workers))
    hits = pack_hits(2 * args.save_workers, max_assignments=per_hit + 1)
    ids = {hit.pk: page_ids(hit) for kind in hits for hit in hits[kind]}
    save_tokens = {
        kind: [(accept(hit, f"{kind}-saver-{i}"), ids[hit.pk]) for i, hit in enumerate(hits[kind])] for kind in hits
    }
    flush_tokens = []
    for i in range(args.flush_workers):
        hit = hits["imagenet"][i % len(hits["imagenet"])]
        flush_tokens.append((accept(hit, f"flusher-{i}"), ids[hit.pk][0]))
    from django.db import connection

    connection.close()
    port = free_port()
    server = start_gunicorn(args, args.database_url, port)
    base = f"http://127.0.0.1:{port}"
    warm_up(base, flush_tokens[0][0], args.gunicorn_workers * args.gunicorn_threads)
    try:
        nothing = {"records": 0, "saves": 0}
        sent_imagenet = sent_coco = nothing
        sent_events = {"batches": 0, "events": 0}
        n = args.save_workers
        for scenario, interval, offset in (("A", args.save_interval, 0), ("S", None, n)):
            if scenario not in args.scenarios:
                continue
            imagenet_sent, _ = scenario_saves(
                server, base, "imagenet", save_tokens["imagenet"][offset:offset + n],
                lambda hit_ids, page, rng: imagenet_page_body(hit_ids[page], rng), 1 + offset, interval,
            )
            coco_sent, _ = scenario_saves(
                server, base, "coco", save_tokens["coco"][offset:offset + n],
                lambda hit_ids, page, rng: coco_page_body(hit_ids[page][0], rng), 2 + offset, interval,
            )
            sent_imagenet = {key: sent_imagenet[key] + imagenet_sent[key] for key in nothing}
            sent_coco = {key: sent_coco[key] + coco_sent[key] for key in nothing}
        if "B" in args.scenarios:
            sent_events, _ = scenario_flushes(server, base, flush_tokens, args.flush_seconds)
    finally:
        stop(server)
    ok = verify(sent_imagenet, sent_coco, sent_events)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
