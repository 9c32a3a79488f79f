"""Import throughput: datasets (ImageNet / COCO folders) and published byproducts (ImageNet-AB / COCO-AB).

    .venv/bin/python benchmarks/import_throughput.py [--per-class 72] [--keep DIR]
    .venv/bin/python benchmarks/import_throughput.py --byproducts 20000 100000 [--database-url postgres://...]

Datasets: runs on the embedded set-up in a throwaway folder (its own SQLite file and local media), so it touches
no configured database or bucket. Prints images/s for generation, for the first import (every image decoded and
checked, copied to storage, display version made, rows written in one transaction) and for the idempotent
re-import (everything checked against what is there, nothing written), wall clock and CPU seconds.

Byproducts (--byproducts N...): (re)creates its own PostgreSQL database and, for each N, an ImageNet-style and a
COCO-style dataset (rows only, no image files) with a generated ImageNet-AB tarball of N sessions (2 per image,
48 images a page, 10 pages an assignment, 20 mouse samples each) and a COCO-AB file of N records (2 per image,
4 ground-truth polygons an image, 5 actions and 20 mouse samples a record), written by the exporters' own writers.
Each `manage.py import_ab` runs in a fresh process, so its peak RSS is its own; prints records/s (wall and per
CPU-second of the importing process), its RSS before the import and its peak RSS.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import INSERT_CHUNK, ITEMS_PER_PAGE, PAGES_PER_HIT  # noqa: E402
from benchmarks.support import dataset_with_classes, fresh_database, setup_django  # noqa: E402

SESSIONS_PER_IMAGE = 2
TRACE_SAMPLES = 20
N_CATEGORIES = 80


def timed(step):
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def report(label, n_images, wall, cpu):
    print(f"{label:<34} {n_images:>6} images  {wall:7.2f} s wall ({n_images / wall:7.1f}/s)  "
          f"{cpu:7.2f} s CPU ({n_images / cpu:7.1f}/s)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=72, help="ImageNet-style train images per class")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    parser.add_argument("--byproducts", type=int, nargs="+", metavar="N",
                        help="benchmark the ImageNet-AB / COCO-AB import with N records each (PostgreSQL)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/luab_bench_import")
    parser.add_argument("--run", nargs=3, metavar=("FORMAT", "PATH", "DATASET"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.run:
        setup_django(args.database_url, migrate=False)
        run_byproduct_import(*args.run)
    elif args.byproducts:
        byproducts(args)
    else:
        datasets(args)


def datasets(args):
    work = Path(args.keep or tempfile.mkdtemp(prefix="luab-import-bench-"))
    os.environ.update({
        "VAR_DIR": str(work / "var"), "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
        "MEDIA_ROOT": str(work / "media"), "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING",
    })
    os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
    import django

    django.setup()
    from django.core.management import call_command

    from annotator.importers import import_coco, import_imagenet
    from devtools import demo_data

    call_command("migrate", verbosity=0)
    print(f"work folder {work}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    images, wall, cpu = timed(lambda: demo_data.generate_imagenet(work / "imagenet", per_class=args.per_class))
    report("generate imagenet-style", len(images), wall, cpu)
    summary, wall, cpu = timed(lambda: import_imagenet(work / "imagenet", "bench-imagenet"))
    report("import imagenet-style", summary.images_created, wall, cpu)
    summary, wall, cpu = timed(lambda: import_imagenet(work / "imagenet", "bench-imagenet"))
    report("re-import imagenet-style (no-op)", summary.images_skipped, wall, cpu)

    coco_images, wall, cpu = timed(lambda: demo_data.generate_coco(work / "coco", per_class=args.per_class // 6))
    report("generate coco-style", len(coco_images), wall, cpu)
    created = 0
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    for split in demo_data.SPLITS:
        created += import_coco(work / "coco" / "images" / split, work / "coco" / "annotations" /
                               f"instances_{split}.json", "bench-coco", split=split).images_created
    report("import coco-style (3 splits)", created, time.perf_counter() - start_wall,
           time.process_time() - start_cpu)
    stored = sum(1 for p in (work / "media").rglob("*") if p.is_file())
    print(f"stored files: {stored} (originals + display versions)")
    if not args.keep:
        shutil.rmtree(work)


def byproducts(args):
    fresh_database(args.database_url)
    setup_django(args.database_url)
    rng = random.Random(0)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="luab-ab-bench-") as folder:
        for n_records in args.byproducts:
            files = {
                "imagenet-ab": generate_imagenet_ab(n_records, Path(folder) / f"imagenet_ab_{n_records}.tar.gz", rng),
                "coco-ab": generate_coco_ab(n_records, Path(folder) / f"coco_ab_{n_records}.json", rng),
            }
            for export_format, (path, dataset) in files.items():
                output = subprocess.run(
                    [sys.executable, __file__, "--run", export_format, str(path), dataset,
                     "--database-url", args.database_url],
                    check=True, capture_output=True, text=True,
                ).stdout
                figures = json.loads(output.strip().splitlines()[-1])
                print(f"import {export_format:<11} {figures['records']:>7,} records  {figures['seconds']:7.1f} s "
                      f"= {figures['records'] / figures['seconds']:7,.0f} records/s  "
                      f"({figures['records'] / figures['cpu_seconds']:7,.0f} per CPU-second)  "
                      f"file {path.stat().st_size / 2**20:6.1f} MiB  RSS before {figures['rss_before_mib']:.0f} MiB, "
                      f"peak {figures['peak_rss_mib']:.0f} MiB")


def _dataset(name, kind, n_images, with_objects):
    """An imported dataset's rows (no files): N_CATEGORIES classes, n_images images, polygons when asked."""
    from django.db import transaction

    from annotator import models

    with transaction.atomic():
        dataset, categories = dataset_with_classes(name, N_CATEGORIES, kind)
        images = models.Image.objects.bulk_create(
            (models.Image(dataset=dataset, key=f"{categories[i % N_CATEGORIES].key}_{i}" if kind == "imagenet"
                          else str(100000 + i), file=f"images/{name}/{i}.jpg", width=640, height=480,
                          label=categories[i % N_CATEGORIES] if kind == "imagenet" else None)
             for i in range(n_images)),
            batch_size=INSERT_CHUNK,
        )
        if with_objects:
            models.GroundTruthObject.objects.bulk_create(
                (models.GroundTruthObject(image=image, category=categories[(i + k) % N_CATEGORIES],
                                          bbox=[100 * k, 50, 100, 100], area=10000,
                                          segmentation=[[100 * k, 50, 100 * k + 100, 50, 100 * k + 50, 150]])
                 for i, image in enumerate(images) for k in range(4)),
                batch_size=INSERT_CHUNK,
            )
    return categories, images


def generate_imagenet_ab(n_records, path, rng):
    """An ImageNet-AB tarball of n_records sessions, written by the exporter's write_tar; returns (path, dataset)."""
    from luab import imagenet_ab

    name = f"bench-ab-imagenet-{n_records}"
    n_images = -(-n_records // SESSIONS_PER_IMAGE)
    categories, images = _dataset(name, "imagenet", n_images, with_objects=False)
    per_assignment = ITEMS_PER_PAGE * PAGES_PER_HIT

    def session(j, s):
        slot = s * n_images + j  # the session's place in the whole crowd's work
        start = 1_700_000_000_000 + slot * 10
        selected = rng.random() < 0.4
        trace = [{"x": round(rng.random(), 3), "y": round(rng.random(), 3), "time": start + 16 * t}
                 for t in range(TRACE_SAMPLES)]
        within_page = slot % ITEMS_PER_PAGE
        return {
            "image_id": images[j].pk, "image_key": images[j].key, "image_label": images[j].label.key,
            "page_category": categories[slot // ITEMS_PER_PAGE % N_CATEGORIES].key,
            "original_width": 640, "original_height": 480, "image_width": 200, "image_height": 150,
            "selected": selected, "selected_record": [{**trace[-1], "time": start + 400}] if selected else [],
            "deselected_record": [],
            "hovered_record": [{"action": "enter", "time": start}, {"action": "leave", "time": start + 800}],
            "mouse_tracking": trace,
            "image_position": {"x": 100 + within_page % 8 * 210, "y": 300 + within_page // 8 * 180},
            "worker_hashed_id": f"{slot // per_assignment:010X}",
            "assignment_external_id": f"ASSIGNMENT{slot // per_assignment:020d}",
            "page_index": slot // ITEMS_PER_PAGE % PAGES_PER_HIT,
        }

    sessions = (session(j, s) for j in range(n_images) for s in range(SESSIONS_PER_IMAGE)
                if s * n_images + j < n_records)
    with gzip.open(path, "wb", compresslevel=3) as out:
        imagenet_ab.write_tar(sessions, out, anonymise=lambda hashed: hashed, load_objects=lambda ids: {})
    return path, name


def generate_coco_ab(n_records, path, rng):
    """A COCO-AB JSON list of n_records records, written by the exporter's write_json_list; returns (path, dataset)."""
    from luab import coco_ab

    name = f"bench-ab-coco-{n_records}"
    n_images = -(-n_records // SESSIONS_PER_IMAGE)
    categories, images = _dataset(name, "coco", n_images, with_objects=True)

    def point():
        return {"x": round(rng.random(), 3), "y": round(rng.random(), 3)}

    def record(slot):
        image = images[slot % n_images]
        icons = [categories[(slot + k) % N_CATEGORIES].name for k in range(3)]
        placed = [point() for _ in icons]
        actions = [{"actionType": "add", "iconType": icon, "pointFrom": None, "pointTo": where, "timeAt": 1000 * k}
                   for k, (icon, where) in enumerate(zip(icons, placed))]
        actions.append({"actionType": "move", "iconType": icons[0], "pointFrom": placed[0], "pointTo": point(),
                        "timeAt": 4000})
        actions.append({"actionType": "remove", "iconType": icons[1], "pointFrom": placed[1], "timeAt": 5000})
        return {
            "image_id": int(image.key), "page_id": slot % PAGES_PER_HIT,
            "hit_id": f"HIT{slot // PAGES_PER_HIT:08d}", "worker_id": f"{slot // PAGES_PER_HIT:010X}",
            "originalImageWidth": 640, "originalImageHeight": 480, "imageWidth": 800, "imageHeight": 600,
            "actionHistories": actions,
            "categoryHistories": [{"categoryIndex": 0, "categoryName": icons[0], "timeAt": 10, "usingKeyboard": False}],
            "mouseTracking": [{**point(), "timeAt": 50 * t} for t in range(TRACE_SAMPLES)],
            "timeSpent": 6000,
        }

    with open(path, "wb") as out:
        coco_ab.write_json_list((record(slot) for slot in range(n_records)), out, to_dict=lambda record: record)
    return path, name


def run_byproduct_import(export_format, path, dataset):
    """Child process: one `manage.py import_ab`; prints a JSON line with its figures."""
    from django.core.management import call_command

    from annotator.models import CocoRecord, ImageNetRecord

    rss_before = rss_kib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    call_command("import_ab", path, "--format", export_format, "--dataset", dataset, verbosity=0)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    model = ImageNetRecord if export_format == "imagenet-ab" else CocoRecord
    records = model.objects.filter(image__dataset__name=dataset).count()
    print(json.dumps({"records": records, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "rss_before_mib": rss_before / 1024, "peak_rss_mib": rss_kib("VmHWM") / 1024}))


def rss_kib(field):
    """This process's VmRSS or VmHWM (peak; getrusage's ru_maxrss carries the parent's peak over fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
