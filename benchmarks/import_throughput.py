"""Import throughput: generate the demo ImageNet-style and COCO-style sets, import them, import them again.

    .venv/bin/python benchmarks/import_throughput.py [--per-class 72] [--keep DIR]

Runs on the embedded set-up in a throwaway folder (its own SQLite file and local media), so it touches no
configured database or bucket. Prints images/s for generation, for the first import (every image decoded and
checked, copied to storage, display version made, rows written in one transaction) and for the idempotent
re-import (everything checked against what is there, nothing written), wall clock and CPU seconds.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(step):
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def report(label, n_images, wall, cpu):
    print(f"{label:<34} {n_images:>6} images  {wall:7.2f} s wall ({n_images / wall:7.1f}/s)  "
          f"{cpu:7.2f} s CPU ({n_images / cpu:7.1f}/s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=72, help="ImageNet-style train images per class")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="luab-import-bench-"))
    os.environ.update({
        "VAR_DIR": str(work / "var"), "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
        "MEDIA_ROOT": str(work / "media"), "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING",
    })
    os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
    import django

    django.setup()
    from django.core.management import call_command

    from annotator import demo_data
    from annotator.importers import import_coco, import_imagenet

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


if __name__ == "__main__":
    main()
