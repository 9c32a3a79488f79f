"""Export throughput and memory: ImageNet-style byproduct records written as JSON lines and as ImageNet-AB XML.

    .venv/bin/python benchmarks/export.py [--records 200000] [--database-url postgres://...] [--reuse]

It (re)creates its own PostgreSQL database, migrates it and bulk-generates an approved ImageNet-style batch:
480 records per HIT (10 pages x 48 candidates), about 4 sessions per image, 40% selected with one click, 2 hover
events and 20 mouse samples per record, ground-truth boxes on 42% of the images. Each export then runs in a fresh
process (so its peak RSS is its own) into a file on local disk. Prints records/s (wall clock, and per CPU-second
of the exporting process, which is what a loaded machine distorts least) and peak memory; targets:
jsonl >= 20,000 records/s, imagenet-ab >= 5,000 records/s, peak memory < 1 GiB.
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import INSERT_CHUNK, ITEMS_PER_PAGE  # noqa: E402
from benchmarks.support import dataset_with_classes, fresh_database, setup_django  # noqa: E402

BATCH_NAME = "bench-export"
RECORDS_PER_HIT = 480
SESSIONS_PER_IMAGE = 4
N_CATEGORIES = 100
TRACE_SAMPLES = 20
SELECTED_SHARE = 0.4
BOXED_SHARE = 0.42
FORMATS = ("jsonl", "imagenet-ab")
TARGETS = {"jsonl": 20000, "imagenet-ab": 5000}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/luab_bench_export")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--reuse", action="store_true", help="keep the database if it already holds the records")
    parser.add_argument("--run", choices=FORMATS, help=argparse.SUPPRESS)
    return parser.parse_args()


def existing_record_count():
    from annotator.models import ImageNetRecord

    return ImageNetRecord.objects.filter(assignment__hit__batch__name=BATCH_NAME).count()


def generate(n_records, rng):
    from django.db import transaction
    from tqdm import tqdm

    from annotator import models

    n_images = max(ITEMS_PER_PAGE, n_records // SESSIONS_PER_IMAGE)
    n_hits = -(-n_records // RECORDS_PER_HIT)
    with transaction.atomic():
        dataset, categories = dataset_with_classes("bench-export", N_CATEGORIES)
        images = models.Image.objects.bulk_create(
            (models.Image(dataset=dataset, key=f"{categories[i % N_CATEGORIES].key}_{i}", file=f"images/{i}.JPEG",
                          width=500, height=375, label=categories[i % N_CATEGORIES]) for i in range(n_images)),
            batch_size=INSERT_CHUNK,
        )
        models.GroundTruthObject.objects.bulk_create(
            (models.GroundTruthObject(image=image, category=image.label, bbox=[50, 40, 300, 250], area=75000)
             for image in images if rng.random() < BOXED_SHARE),
            batch_size=INSERT_CHUNK,
        )
        batch = models.Batch.objects.create(name=BATCH_NAME, dataset=dataset, task_kind=models.TaskKind.IMAGENET)
        hits = models.Hit.objects.bulk_create(models.Hit(batch=batch, index=i) for i in range(n_hits))
        workers = models.Worker.objects.bulk_create(
            models.Worker(provider="link", external_id=f"W{i}", hashed_id=models.hash_worker_id("link", f"W{i}"))
            for i in range(n_hits)
        )
        assignments = models.Assignment.objects.bulk_create(
            models.Assignment(hit=hit, worker=worker, state=models.Assignment.State.APPROVED, external_id=f"A{i}")
            for i, (hit, worker) in enumerate(zip(hits, workers))
        )
        pages = models.HitPage.objects.bulk_create(
            (models.HitPage(hit=hit, index=p, category=categories[(h + p) % N_CATEGORIES])
             for h, hit in enumerate(hits) for p in range(RECORDS_PER_HIT // ITEMS_PER_PAGE)),
            batch_size=INSERT_CHUNK,
        )

    def record(i):
        page = pages[i // ITEMS_PER_PAGE]
        start = 1_700_000_000_000 + i * 10
        selected = rng.random() < SELECTED_SHARE
        trace = [{"x": round(rng.random(), 4), "y": round(rng.random(), 4), "time": start + 16 * s}
                 for s in range(TRACE_SAMPLES)]
        return models.ImageNetRecord(
            assignment=assignments[i // RECORDS_PER_HIT], page=page, image=images[(i * 7919) % n_images],
            selected=selected, selected_record=[{**trace[-1], "time": start + 400}] if selected else [],
            hovered_record=[{"action": "enter", "time": start}, {"action": "leave", "time": start + 800}],
            mouse_tracking=trace, image_position={"x": 100 + (i % 8) * 210, "y": 300 + (i % 48 // 8) * 180},
            image_width=200, image_height=150,
        )

    with tqdm(total=n_records, unit="record", desc="generate") as bar:
        for start in range(0, n_records, INSERT_CHUNK):
            chunk = [record(i) for i in range(start, min(n_records, start + INSERT_CHUNK))]
            models.ImageNetRecord.objects.bulk_create(chunk)
            bar.update(len(chunk))


def run_one(export_format):
    """Child process: one export into a temporary file; prints a JSON line with its figures."""
    from annotator.exports import services
    from annotator.models import Batch

    batch = Batch.objects.get(name=BATCH_NAME)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"export.{export_format}"
        started, cpu_started = time.perf_counter(), time.process_time()
        count = services.export_to_path(batch, export_format, path)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        size = path.stat().st_size
    print(json.dumps({"format": export_format, "records": count, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "bytes": size,
                      "peak_rss_mib": peak_rss_kib() / 1024}))


def peak_rss_kib():
    """This process's own peak RSS: VmHWM (getrusage's ru_maxrss carries the parent's peak over fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    args = parse_args()
    if args.run:
        setup_django(args.database_url, migrate=False)
        run_one(args.run)
        return
    fresh_database(args.database_url, args.reuse)
    setup_django(args.database_url, migrate=True)
    existing = existing_record_count()
    if existing != args.records:
        if existing:
            sys.exit(f"the database holds {existing:,} records, not {args.records:,}; run without --reuse")
        generate(args.records, random.Random(0))
    print(f"records: {args.records:,} ImageNet-style, {TRACE_SAMPLES} mouse samples each; cpu count {os.cpu_count()}")
    for export_format in FORMATS:
        output = subprocess.run(
            [sys.executable, __file__, "--run", export_format, "--database-url", args.database_url],
            check=True, capture_output=True, text=True,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        rate = figures["records"] / figures["seconds"]
        print(
            f"{export_format:12s} {figures['records']:,} records in {figures['seconds']:.1f} s = {rate:,.0f} records/s "
            f"(target >= {TARGETS[export_format]:,}); exporting process CPU {figures['cpu_seconds']:.1f} s = "
            f"{figures['records'] / figures['cpu_seconds']:,.0f} records per CPU-second; "
            f"file {figures['bytes'] / 2**20:.1f} MiB; "
            f"peak RSS {figures['peak_rss_mib']:.0f} MiB (target < 1024)"
        )


if __name__ == "__main__":
    main()
