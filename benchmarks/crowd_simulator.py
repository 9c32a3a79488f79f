"""The crowd simulator against gunicorn + PostgreSQL: throughput, and what review makes of each worker profile.

    .venv/bin/python benchmarks/crowd_simulator.py [--database-url postgres://...] [--batches 8] [--workers 20]

It (re)creates its own PostgreSQL database, generates and imports the demo image sets, packs `--batches`
ImageNet-style batches (10 pages x 48 candidates per HIT) and as many COCO-style batches (20 images per HIT),
starts gunicorn on a free port with Celery eager (so the automatic review decides each HIT as it is submitted,
as a worker process would moments later) and lets the simulated crowd (default mix) work every HIT over HTTP.
Prints HITs/s, requests/s and request latency, then per task kind and worker profile: approval and rejection
rates, the share of first selecting clicks inside the object's box (ImageNet-style; the paper: 82.9%, red-dot
cursor 91.7%) and the icon location accuracy (COCO-style; the paper: 92.3%).
"""
import argparse
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import free_port, fresh_database, setup_django  # noqa: E402

MIX = "diligent=0.7,sloppy=0.15,spammer=0.1,centre=0.05"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/luab_bench_crowd")
    parser.add_argument("--data-dir", default="/tmp/luab-bench-crowd-data", help="generated demo images (reused)")
    parser.add_argument("--batches", type=int, default=8, help="batches of each kind (3 HITs each)")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    return parser.parse_args()


def prepare(args):
    from django.core.management import call_command

    from annotator.models import Batch
    from annotator.providers.services import publish_batch

    call_command("migrate", verbosity=0)
    data = Path(args.data_dir)
    for kind in ("imagenet", "coco"):
        if not (data / kind / "demo_manifest.json").exists():
            call_command("make_demo_dataset", kind=kind, out=str(data / kind), verbosity=0)
    call_command("import_imagenet", str(data / "imagenet"), name="bench-imagenet", verbosity=0)
    for split in ("train", "val", "shifted"):
        call_command("import_coco", images=str(data / "coco" / "images" / split),
                     annotations=str(data / "coco" / "annotations" / f"instances_{split}.json"),
                     name="bench-coco", split=split, verbosity=0)
    names = []
    for i in range(args.batches):
        for kind, dataset, pages in (("in", "bench-imagenet", 10), ("co", "bench-coco", 20)):
            name = f"bench-{kind}-{i}"
            call_command("build_hits", dataset=dataset, batch=name, seed=i, pages_per_hit=pages, verbosity=0)
            publish_batch(Batch.objects.get(name=name))  # a draft batch takes no workers
            names.append(name)
    return names


def wait_until_serving(port, timeout_s=180):
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise SystemExit(f"gunicorn did not answer on port {port} within {timeout_s} s")


def click_in_box_by_profile(batch_names):
    from django.db.models import F

    from annotator.models import GroundTruthObject, ImageNetRecord

    boxes = defaultdict(list)
    rows = GroundTruthObject.objects.filter(image__dataset__name="bench-imagenet").values_list(
        "image_id", "bbox", "image__width", "image__height"
    )
    for image_id, bbox, width, height in rows:
        boxes[image_id].append((bbox, width, height))
    counts = defaultdict(Counter)
    records = ImageNetRecord.objects.filter(
        assignment__hit__batch__name__in=batch_names, selected=True, page__category=F("image__label")
    ).values_list("image_id", "assignment__worker__external_id", "selected_record")
    for image_id, worker, clicks in records:
        x, y = clicks[0]["x"], clicks[0]["y"]
        inside = any(b[0] <= x * w <= b[0] + b[2] and b[1] <= y * h <= b[1] + b[3] for b, w, h in boxes[image_id])
        counts[worker.split("-")[1]][inside] += 1
    return {profile: c[True] / (c[True] + c[False]) for profile, c in counts.items()}


def report(runs, elapsed_s):
    from annotator.models import Assignment
    from devtools import simulator

    outcomes = [o for run in runs.values() for o in run.outcomes]
    latencies = simulator.CrowdRun(outcomes=outcomes, elapsed_s=elapsed_s, workers={}).latency_percentiles()
    print(f"{len(outcomes)} HITs in {elapsed_s:.1f} s: {len(outcomes) / elapsed_s:.2f} HITs/s, "
          f"{latencies['requests'] / elapsed_s:.1f} requests/s, p50 {latencies['p50_ms']:.0f} ms, "
          f"p95 {latencies['p95_ms']:.0f} ms, max {latencies['max_ms']:.0f} ms")
    print(f"failed: {sum(o.status == 'failed' for o in outcomes)}, refused: {sum(o.status == 'refused' for o in outcomes)}")
    decisions = defaultdict(Counter)
    icon_accuracy = defaultdict(list)
    rows = Assignment.objects.filter(hit__batch__name__in=list(runs)).values_list(
        "hit__batch__task_kind", "worker__external_id", "state", "review"
    )
    for kind, worker, state, review in rows:
        profile = worker.split("-")[1]
        decisions[kind, profile][state] += 1
        if kind == "coco" and review.get("measurements", {}).get("icon_accuracy") is not None:
            icon_accuracy[profile].append(review["measurements"]["icon_accuracy"])
    in_box = click_in_box_by_profile([name for name in runs if name.startswith("bench-in")])
    print(f"{'kind':<9}{'profile':<10}{'HITs':>5}{'approved':>10}{'rejected':>10}  byproduct quality")
    for (kind, profile), states in sorted(decisions.items()):
        total = sum(states.values())
        quality = (f"first click in box {in_box.get(profile, 0):.1%}" if kind == "imagenet"
                   else f"mean icon accuracy {sum(icon_accuracy[profile]) / max(1, len(icon_accuracy[profile])):.1%}")
        print(f"{kind:<9}{profile:<10}{total:>5}{states['approved'] / total:>10.0%}{states['rejected'] / total:>10.0%}"
              f"  {quality}")


def main():
    args = parse_args()
    fresh_database(args.database_url)
    setup_django(args.database_url, migrate=False, CELERY_TASK_ALWAYS_EAGER="true", LOG_LEVEL="WARNING")
    from annotator.models import Batch
    from devtools import simulator

    names = prepare(args)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", str(args.gunicorn_workers), "--log-level", "warning"],
        cwd=ROOT, env=os.environ.copy(),
    )
    try:
        wait_until_serving(port)
        transport = simulator.HttpTransport(f"http://127.0.0.1:{port}")
        mix = simulator.parse_mix(MIX)
        runs = {}
        started = time.perf_counter()
        for seed, name in enumerate(names):
            batch = Batch.objects.get(name=name)
            runs[name] = simulator.run_crowd(batch, simulator.hits_to_work(batch), transport=transport,
                                             n_workers=args.workers, mix=mix, seed=seed,
                                             concurrency=args.concurrency)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(runs, elapsed)


if __name__ == "__main__":
    main()
