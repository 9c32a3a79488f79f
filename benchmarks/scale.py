"""Paper scale end to end: each step of the product on ImageNet-AB data of N records, time and peak memory.

    nice -n 10 .venv/bin/python benchmarks/scale.py --records 20000 100000 [...] [--images M] \
        [--steps ...] [--pages-at-rows ROWS] [--database-url postgres://postgres@127.0.0.1:5432/luab_scale_bench] \
        [--out benchmarks/results/scale.json]

For each N it (re)creates its own PostgreSQL database and builds, as the paper's ImageNet-AB does, an ImageNet-style
dataset (rows, every image naming one stored JPEG: 1,000 classes, N / 2 train images or --images M, one val image
with a ground-truth box per 25 train images) and a generated ImageNet-AB tarball of N sessions (2 per image, 48
images a page, 10 pages an assignment: one HIT per 480 records) written by the exporter's own writer
(benchmarks/import_throughput.py). Then, each in a fresh process so its peak RSS (VmHWM) is its own, it runs and
measures the product's steps on it:

  import      `manage.py import_ab` (the batch, HITs, assignments, records, page summaries; ANALYZE)
  manifest    training.manifest_builder.build_manifest of the dataset (what a training job's snapshot builds)
  report      `manage.py byproduct_report` of the imported batch
  export      `manage.py export_ab` as jsonl and as imagenet-ab (tar.gz of XML)
  review      annotator.review.services.review_batch (dry run over every HIT of the batch)
  pages       the admin's lists of the big tables (records, page items, events, event batches, ground truth:
              unfiltered, filtered by batch, searched), the review dashboard and an assignment's replay page:
              median ms of 3 loads and the SQL queries of each
  worker_api  one HIT of 10 pages published from the dataset's images: GET each page and save it (48 records),
              median ms
  training    (only when asked) a training job through training.services.training_jobs.run_training_job, the sweeper running
              with a 30 s heartbeat timeout, stopped after 20 steps: snapshot time, attempts, peak RSS

--pages-at-rows ROWS then grows the big tables to ROWS rows each with synthesized copies of the imported rows (SQL
INSERT ... SELECT, step grow) and measures the pages again (step pages_at_rows). With --reuse, --steps grow grows
only the tables still short of ROWS (after a grow stopped part way).

Results go to --out (JSON, one entry per N, replaced when N is measured again; commit, machine, load average,
settings), written after each step; a table with each step's growth against the previous size is printed.
--steps measures only some steps; --reuse measures them on the database an earlier run of the same size left
(after an interrupted run: the figures are added to its entry).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import fresh_database, setup_django  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/luab_scale_bench"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale.json"
N_CLASSES = 1000
TRAIN_PER_VAL = 25  # ImageNet: 1.28M train, 50k val images
# The quick ones first: a run cut short still has them.
STEPS = ("import", "manifest", "pages", "review", "worker_api", "report", "export", "training")
GROW_STEPS = ("grow", "pages_at_rows")  # after the others, with --pages-at-rows
SHARED_IMAGE = "bench/shared.jpg"  # the one stored JPEG every image row of the dataset names (rows only otherwise)
TRAINING_STEPS = 20  # the training step stops its job once it has trained this many steps
HEARTBEAT_TIMEOUT_S = 30  # the training step's TRAINING_HEARTBEAT_TIMEOUT: shorter than the snapshot it sweeps during


def dataset_name(n_records):
    return f"bench-ab-imagenet-{n_records}"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", metavar="N", help="sizes to measure, in records")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", nargs="+", choices=STEPS + GROW_STEPS, default=list(STEPS[:-1]),
                        help="steps to measure (default: all but training)")
    parser.add_argument("--images", type=int, metavar="M",
                        help="train images in the dataset (default N / 2: ImageNet-AB's 2 sessions an image); the "
                             "sessions cover the first N / 2, the others are rows without sessions")
    parser.add_argument("--pages-at-rows", type=int, metavar="ROWS",
                        help="then grow the big tables to ROWS rows each (synthesized copies of the imported rows, "
                             "in SQL) and measure the pages again")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database of an earlier run of this size (no generate, no import) and add the "
                             "steps measured now to its entry in --out")
    parser.add_argument("--step", choices=("generate",) + STEPS + GROW_STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.records:
        parser.error("--records: give at least one size")
    return args


def main():
    args = parse_args()
    if args.step:
        setup_django(args.database_url, migrate=args.step == "generate", MEDIA_ROOT=str(args.work / "media"),
                     TRAINING_WORK_DIR=str(args.work / "training"), TRAINING_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT_S))
        figures = globals()[f"step_{args.step}"](args.records[0], args.work, args)
        figures["peak_rss_mib"] = rss_kib("VmHWM") / 1024
        print(json.dumps(figures))
        return
    for n_records in args.records:
        measure(args, n_records)


def run_key(args, n_records):
    """A run's entry in --out: N, with the images when not N / 2 and the rows the tables were grown to."""
    key = f"{n_records} records, {args.images} images" if args.images else str(n_records)
    return key + (f", tables grown to {args.pages_at_rows} rows" if args.pages_at_rows else "")


def read(path):
    return json.loads(path.read_text()) if path.exists() else {"benchmark": "scale", "runs": {}}


def measure(args, n_records):
    key = run_key(args, n_records)
    if args.reuse:
        run = read(args.out)["runs"][key]
        run.setdefault("resumed", []).append({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                              "commit": git_commit(), "load_average": os.getloadavg()})
        steps = [step for step in args.steps if step != "import"]
        subprocess.run([sys.executable, ROOT / "manage.py", "migrate", "--verbosity", "0"], check=True,
                       env={**os.environ, "DATABASE_URL": args.database_url})  # what the code has added since
    else:
        fresh_database(args.database_url)
        run = new_run(args, n_records)
        steps = ["generate"] + args.steps
    if args.pages_at_rows and not set(GROW_STEPS) & set(steps):  # --steps grow: grow what is still short
        steps += ["pages_at_rows"] if "grow" in run["steps"] else list(GROW_STEPS)
    print(f"--- {n_records:,} records (load average {os.getloadavg()[0]:.1f})", flush=True)
    with tempfile.TemporaryDirectory(prefix="luab-scale-") as work:
        for step in steps:
            child = subprocess.run(
                [sys.executable, __file__, "--step", step, "--records", str(n_records), "--work", work,
                 "--database-url", args.database_url] + (["--images", str(args.images)] if args.images else [])
                + (["--pages-at-rows", str(args.pages_at_rows)] if args.pages_at_rows else []),
                capture_output=True, text=True,
            )
            if child.returncode:
                sys.exit(f"step {step} failed:\n{child.stderr[-3000:]}")
            run["steps"][step] = figures = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"{step:<10} {summary(figures)}", flush=True)
            run["load_average_at_end"] = os.getloadavg()
            write(args.out, key, run)
    print_growth(read(args.out))


def new_run(args, n_records):
    return {
        "records": n_records, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "machine": machine(), "load_average_at_start": os.getloadavg(),
        "settings": {"database": "PostgreSQL " + postgres_version(args.database_url), "classes": N_CLASSES,
                     "sessions_per_image": 2, "train_images": args.images or -(-n_records // 2), "images_per_page": 48,
                     "pages_per_hit": 10,
                     "train_images_per_val_image": TRAIN_PER_VAL, "nice": os.nice(0)},
        "steps": {},
    }


def write(path, key, run):
    """Put run in --out as entry key, re-reading the file first: runs of other sizes may be writing it too."""
    results = read(path)
    results["runs"][key] = run
    results["runs"] = dict(sorted(results["runs"].items(),
                                  key=lambda item: (item[1]["records"], item[1]["settings"].get("train_images", 0))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


def summary(figures):
    parts = [f"{figures['seconds']:.1f} s" if "seconds" in figures else "",
             f"peak {figures['peak_rss_mib']:.0f} MiB"]
    parts += [f"{key} {value}" for key, value in figures.items() if key.endswith("_per_s") or key == "queries"]
    if "pages" in figures:
        parts += [f"{name} {page['ms']:.0f} ms/{page['queries']} q" for name, page in figures["pages"].items()]
    if "median_ms" in figures:
        parts += [f"{name} {ms:.1f} ms" for name, ms in figures["median_ms"].items()]
    return ", ".join(part for part in parts if part)


def print_growth(results):
    """Each step's seconds and peak MiB per size (runs of N / 2 images, not grown), with the factor against the
    previous size."""
    runs = [run for key, run in results["runs"].items() if key.isdigit()]
    print(f"{'step':<22}" + "".join(f"{run['records']:>22,}" for run in runs))
    rows = [(step, "seconds") for step in STEPS if step not in ("pages", "worker_api")]
    rows += [(step, "peak_rss_mib") for step in STEPS if step not in ("pages", "worker_api")]
    for step, key in rows:
        line, previous = f"{step + ' ' + ('s' if key == 'seconds' else 'MiB'):<22}", None
        for run in runs:
            value = run["steps"].get(step, {}).get(key)
            growth = f" (x{value / previous:.1f})" if value and previous else ""
            line += f"{'' if value is None else f'{value:.1f}{growth}':>22}"
            previous = value
        print(line)


def git_commit():
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def machine():
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpus": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1), "platform": platform.platform(),
            "python": platform.python_version()}


def postgres_version(database_url):
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


def rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.wall
        self.cpu_seconds = time.process_time() - self.cpu


class QueryCounter:
    """Counts the SQL statements Django sends on the default connection while active, and the seconds they take."""

    def __init__(self):
        self.count, self.seconds = 0, 0.0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started

    def __enter__(self):
        from django.db import connection

        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        self._wrapper.__exit__(*exc)


# --- the steps, each in its own process -------------------------------------------------------------------------


def tarball(work, n_records):
    return Path(work) / f"imagenet_ab_{n_records}.tar.gz"


def step_generate(n_records, work, args):
    """The dataset's rows (train images of the tarball, val images with a box each) and the tarball."""
    import random

    from django.db import connection

    from annotator import models
    from benchmarks import import_throughput

    import_throughput.N_CATEGORIES = N_CLASSES
    with Timer() as timer:
        import_throughput.generate_imagenet_ab(n_records, tarball(work, n_records), random.Random(0))
        dataset = models.Dataset.objects.get(name=dataset_name(n_records))
        categories = list(dataset.categories.order_by("index"))
        dataset.images.update(file=SHARED_IMAGE)
        n_train = args.images or dataset.images.count()
        with connection.cursor() as cursor:  # images without sessions, up to --images, as the generator names them
            cursor.execute(
                'INSERT INTO "annotator_image" (dataset_id, key, file, display_file, display_file_2x, width, height, '
                "split, label_id, meta) SELECT %s, c.key || '_' || i, %s, '', '', 640, 480, %s, c.id, '{}' "
                'FROM generate_series(%s, %s) i JOIN "annotator_category" c '
                "ON c.dataset_id = %s AND c.index = i %% %s",
                [dataset.pk, SHARED_IMAGE, models.Split.TRAIN, dataset.images.count(), n_train - 1, dataset.pk,
                 N_CLASSES],
            )
        n_val = n_train // TRAIN_PER_VAL
        val_images = models.Image.objects.bulk_create(
            (models.Image(dataset=dataset, key=f"val_{i:08d}", file=SHARED_IMAGE,
                          width=500, height=375, split=models.Split.VAL, label=categories[i % N_CLASSES])
             for i in range(n_val)),
            batch_size=5000,
        )
        models.GroundTruthObject.objects.bulk_create(
            (models.GroundTruthObject(image=image, category=categories[i % N_CLASSES], bbox=[50, 40, 300, 200],
                                      area=60000) for i, image in enumerate(val_images)),
            batch_size=5000,
        )
    return {"seconds": timer.seconds, "images": dataset.images.count(), "val_images": n_val,
            "tarball_mib": tarball(work, n_records).stat().st_size / 2**20}


def imported_batch(n_records):
    from annotator.models import Batch

    return Batch.objects.filter(dataset__name=dataset_name(n_records)).order_by("pk").first()  # the import's


def step_import(n_records, work, args):
    from django.core.management import call_command

    from annotator.models import ImageNetRecord

    with Timer() as timer:
        call_command("import_ab", tarball(work, n_records), "--format", "imagenet-ab", "--dataset",
                     dataset_name(n_records), verbosity=0)
    records = ImageNetRecord.objects.filter(image__dataset__name=dataset_name(n_records)).count()
    return {"seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds, "records": records,
            "records_per_s": round(records / timer.seconds)}


def step_manifest(n_records, work, args):
    from annotator.models import Dataset
    from training.manifest_builder import build_manifest
    from training.ml import manifest as manifest_module

    dataset = Dataset.objects.get(name=dataset_name(n_records))
    with QueryCounter() as queries, Timer() as timer:
        path = build_manifest(dataset, out_dir=Path(work) / "manifests")
    manifest = manifest_module.read(path, verify=False)
    return {"seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds, "queries": queries.count,
            "images": len(manifest), "images_per_s": round(len(manifest) / timer.seconds),
            "train_with_points": manifest.source["train_with_points"], "boxes": len(manifest.box),
            "file_mib": path.stat().st_size / 2**20}


def step_report(n_records, work, args):
    from django.core.management import call_command

    with Timer() as timer:
        call_command("byproduct_report", imported_batch(n_records).name, "--out", Path(work) / "report", verbosity=0)
    return {"seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds}


def step_export(n_records, work, args):
    from django.core.management import call_command

    batch = imported_batch(n_records)
    figures = {"seconds": 0.0}
    for export_format, suffix in (("jsonl", "jsonl"), ("imagenet-ab", "tar.gz")):
        path = Path(work) / f"export.{suffix}"
        with Timer() as timer:
            call_command("export_ab", batch.name, "--format", export_format, "--out", path, verbosity=0)
        figures[f"{export_format}_seconds"] = timer.seconds
        figures[f"{export_format}_records_per_s"] = round(n_records / timer.seconds)
        figures["seconds"] += timer.seconds
        path.unlink()
    return figures


def step_review(n_records, work, args):
    from annotator.review import services

    with Timer() as timer:
        result = services.review_batch(imported_batch(n_records), apply=False)
    return {"seconds": timer.seconds, "hits": result.reviewed,
            "ms_per_hit": round(timer.seconds * 1000 / max(1, result.reviewed), 3)}


def step_pages(n_records, work, args):
    """The heavy pages, loaded three times each by a logged-in superuser: median ms, the SQL queries and the ms
    they took (the rest is Python: the view and its template)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from annotator.models import Assignment, Batch, Image

    batch = imported_batch(n_records)
    # A second batch (empty), as staff have: the admin drops a filter with a single choice, and with it its lookup.
    Batch.objects.get_or_create(name=f"bench-pages-{n_records}", dataset=batch.dataset, task_kind="imagenet")
    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    assignment = Assignment.objects.filter(hit__batch=batch).order_by("pk").first()
    by_batch = {"records": "assignment__hit__batch__id__exact", "page_items": "page__hit__batch__id__exact",
                "events": "batch__id__exact", "event_batches": "assignment__hit__batch__id__exact"}
    admin = {"records": "imagenetrecord", "page_items": "pageitem", "events": "event",
             "event_batches": "eventbatch", "ground_truth": "groundtruthobject"}
    urls = {}
    for name, model in admin.items():
        urls[f"admin {name}"] = f"/admin/annotator/{model}/"
        if name in by_batch:
            urls[f"admin {name} by batch"] = f"/admin/annotator/{model}/?{by_batch[name]}={batch.pk}"
    image = Image.objects.filter(dataset=batch.dataset).order_by("pk")[n_records // 4]
    urls["admin records search"] = f"/admin/annotator/imagenetrecord/?q={image.key}"
    deep = min(50, n_records // 200)  # a page halfway or further in
    urls[f"admin records by batch, page {deep}"] = (
        f"/admin/annotator/imagenetrecord/?{by_batch['records']}={batch.pk}&p={deep}"
    )
    urls["review dashboard"] = f"/review/batches/{batch.pk}/"
    urls["review assignment replay"] = f"/review/assignments/{assignment.pk}/"
    pages = {}
    with Timer() as timer:
        for name, url in urls.items():
            loads, sql = [], []
            for _ in range(3):
                with QueryCounter() as queries:
                    started = time.perf_counter()
                    response = client.get(url)
                    loads.append((time.perf_counter() - started) * 1000)
                sql.append(queries.seconds * 1000)
                assert response.status_code == 200, f"{url}: {response.status_code}"
            pages[name] = {"ms": round(statistics.median(loads), 1), "queries": queries.count,
                           "sql_ms": round(statistics.median(sql), 1)}
    return {"seconds": timer.seconds, "load_average": os.getloadavg(), "pages": pages}


def step_grow(n_records, work, args):
    """Grow the big tables to --pages-at-rows rows each, cheaply: INSERT ... SELECT of k = 1..K copies of the
    imported rows (generate_series), ids shifted by k times the table's largest id. The batch's HITs, pages and
    assignments are copied K times too, and the records and page items of copy k belong to copy k (their unique
    keys need it); events and ground-truth boxes are copied as often as it takes, events pointing to the HIT
    copies round robin; event batches (the import writes none) are made from the page summaries, as the worker
    API's page saves leave them, pointing to the copies round robin. Then ANALYZE."""
    from django.db import connection

    from annotator import models

    rows = args.pages_at_rows
    hit_tree = (models.Hit, models.HitPage, models.Assignment, models.ImageNetRecord, models.PageItem)
    tables = hit_tree + (models.Event, models.GroundTruthObject, models.PageSubmission, models.EventBatch)
    with Timer() as timer, connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        # No foreign-key triggers (a superuser's setting): the copies' keys are valid by construction, and checking
        # them at commit took longer than writing the rows (10M records: 17 min of writes, then minutes of checks).
        cursor.execute("SET session_replication_role = replica")
        stride, count = {}, {}
        for model in tables:
            cursor.execute(f'SELECT coalesce(max(id), 0), count(*) FROM "{model._meta.db_table}"')
            stride[model], count[model] = cursor.fetchone()
        # A run grown before (--reuse) has its HIT-tree copies already: the imported rows are the first of each
        # table (the copies' ids are above them), and only the tables still short of ROWS are grown.
        done = count[models.ImageNetRecord] // n_records - 1
        for model in hit_tree:
            count[model] //= done + 1
            cursor.execute(f'SELECT max(id) FROM (SELECT id FROM "{model._meta.db_table}" ORDER BY id LIMIT %s) s',
                           [count[model]])
            stride[model] = cursor.fetchone()[0]
        cursor.execute('SELECT max(index) + 1 FROM "annotator_hit" WHERE id <= %s', [stride[models.Hit]])
        hit_index = cursor.fetchone()[0]

        def copies_to_reach_rows(model):
            return -(-rows // count[model]) - 1

        tree = max(copies_to_reach_rows(models.ImageNetRecord), copies_to_reach_rows(models.PageItem))

        def to_copy(column, model, round_robin=False):
            """An id of model's rows moved to its copy k (round robin: to copy k modulo the tree's copies)."""
            return f's."{column}" + {f"(k %% {tree + 1})" if round_robin else "k"} * {stride[model]}'

        def copy_rows(model, copies, overrides, source=None, first=1):
            """k = first..copies copies of each row of source (default: the model's own table) as s: the columns
            in overrides (SQL over s and k) computed, the others copied as they are."""
            table, columns = model._meta.db_table, [field.column for field in model._meta.concrete_fields]
            select = ", ".join(overrides.get(column, f's."{column}"') for column in columns)
            names = ", ".join(f'"{column}"' for column in columns)
            source_table = (source or model)._meta.db_table
            cursor.execute(f'INSERT INTO "{table}" ({names}) SELECT {select} FROM "{source_table}" s, '
                           f'generate_series(%s, %s) k WHERE s.id <= %s', [first, copies, stride[source or model]])
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")

        copy_rows(models.Hit, tree, {"id": to_copy("id", models.Hit), "index": f"s.index + k * {hit_index}"},
                  first=done + 1)
        copy_rows(models.HitPage, tree, {"id": to_copy("id", models.HitPage), "hit_id": to_copy("hit_id", models.Hit)},
                  first=done + 1)
        copy_rows(models.Assignment, tree, {
            "id": to_copy("id", models.Assignment), "hit_id": to_copy("hit_id", models.Hit),
            "uuid": "gen_random_uuid()", "external_id": "s.external_id || '-' || k",
        }, first=done + 1)
        copy_rows(models.ImageNetRecord, tree, {
            "id": to_copy("id", models.ImageNetRecord), "assignment_id": to_copy("assignment_id", models.Assignment),
            "page_id": to_copy("page_id", models.HitPage),
        }, first=done + 1)
        copy_rows(models.PageItem, tree, {"id": to_copy("id", models.PageItem),
                                          "page_id": to_copy("page_id", models.HitPage)}, first=done + 1)
        copy_rows(models.Event, copies_to_reach_rows(models.Event), {
            "id": to_copy("id", models.Event), "hit_id": to_copy("hit_id", models.Hit, round_robin=True),
            "assignment_id": to_copy("assignment_id", models.Assignment, round_robin=True),
        })
        copy_rows(models.GroundTruthObject, copies_to_reach_rows(models.GroundTruthObject),
                  {"id": to_copy("id", models.GroundTruthObject)})
        event_batches = 0 if count[models.EventBatch] >= rows else copies_to_reach_rows(models.PageSubmission) + 1
        copy_rows(models.EventBatch, event_batches, {
            "id": f"{stride[models.EventBatch]} + s.id + (k - 1) * {stride[models.PageSubmission]}",
            "client_batch_id": "gen_random_uuid()", "seq": "k", "events": "'[]'::json", "client_sent_at": "0",
            "received_at": "s.saved_at", "assignment_id": to_copy("assignment_id", models.Assignment, round_robin=True),
            "page_id": to_copy("page_id", models.HitPage, round_robin=True),
        }, source=models.PageSubmission)
        cursor.execute("ANALYZE")
        grown = {}
        for model in tables:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
            grown[model._meta.model_name] = cursor.fetchone()[0]
    return {"seconds": timer.seconds, "rows_estimated": grown, "hit_tree_copies": tree,
            "imported_rows": {model._meta.model_name: count[model] for model in tables},
            "synthesized": "every row beyond the imported rows is a synthesized copy of an imported row (INSERT ... "
                           "SELECT ... generate_series), in copies of the batch's HITs, pages and assignments; "
                           "event batches are made from the page summaries"}


def step_pages_at_rows(n_records, work, args):
    """The pages again, on the grown tables."""
    return step_pages(n_records, work, args)


def step_worker_api(n_records, work, args):
    """One HIT of 10 pages of 48 of the dataset's images, accepted; each page fetched and saved."""
    from django.test import Client

    import random

    from annotator import models
    from annotator.worker.services import accept_assignment
    from annotator.worker.tokens import make_token
    from benchmarks.ingest import imagenet_page_body, page_ids

    dataset = models.Dataset.objects.get(name=dataset_name(n_records))
    categories = list(dataset.categories.order_by("index")[:10])
    batch = models.Batch.objects.create(
        name=f"bench-worker-{n_records}", dataset=dataset, task_kind="imagenet", status=models.Batch.Status.PUBLISHED,
        pages_per_hit=10, items_per_page=48, round=1,
    )
    hit = models.Hit.objects.create(batch=batch, index=0, status=models.Hit.Status.PUBLISHED, max_assignments=1)
    for index, category in enumerate(categories):
        page = models.HitPage.objects.create(hit=hit, index=index, category=category)
        images = list(models.Image.objects.filter(dataset=dataset, split=models.Split.TRAIN).order_by("pk")[
            index * 48:(index + 1) * 48])
        for image in images:  # rows only: a display version's name (the page links it; no file is read)
            image.display_file = f"display/{image.pk:032x}.jpg"
        models.Image.objects.bulk_update(images, ["display_file"])
        models.PageItem.objects.bulk_create(
            models.PageItem(page=page, image=image, position=k, in_class=image.label_id == category.pk)
            for k, image in enumerate(images)
        )
    hit.refresh_from_db()
    token = make_token(accept_assignment(hit, "W-SCALE-BENCH", "bench-scale"))
    client, rng, ids = Client(), random.Random(0), page_ids(hit)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    gets, saves = [], []
    with Timer() as timer:
        for index in range(10):
            started = time.perf_counter()
            response = client.get(f"/api/worker/pages/{index}", **headers)
            gets.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
            body = json.dumps(imagenet_page_body(ids[index], rng))
            started = time.perf_counter()
            response = client.post(f"/api/worker/pages/{index}/save", body, content_type="application/json",
                                   **headers)
            saves.append((time.perf_counter() - started) * 1000)
            assert response.status_code in (200, 201), response.content[:300]
    return {"seconds": timer.seconds,
            "median_ms": {"get_page": statistics.median(gets), "save_page": statistics.median(saves)}}


def step_training(n_records, work, args):
    """A training job of the dataset (cpu-demo recipe, 1 epoch) run through the product as a worker runs it
    (training.services.training_jobs.run_training_job), stopped by a cancel once it has trained TRAINING_STEPS steps. Its images
    all name one stored 64 x 48 JPEG (SHARED_IMAGE). The sweeper (recover_stale_jobs) runs every 5 s meanwhile
    with a heartbeat timeout of HEARTBEAT_TIMEOUT_S: a snapshot longer than that must not make the job look lost."""
    import io
    import threading

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db import connection
    from PIL import Image as PILImage

    from annotator.models import Dataset
    from training.ml.recipes import recipe
    from training.models import TrainingJob
    from training.services import jobs, recovery, training_jobs

    if not default_storage.exists(SHARED_IMAGE):
        jpeg = io.BytesIO()
        PILImage.new("RGB", (64, 48), (120, 90, 60)).save(jpeg, "JPEG")
        default_storage.save(SHARED_IMAGE, ContentFile(jpeg.getvalue()))
    job = training_jobs.create_training_job(
        dataset=Dataset.objects.get(name=dataset_name(n_records)), config=recipe("cpu-demo", epochs=1),
        source=TrainingJob.Source.COMMAND, enqueue=False,
    )
    seen = {"snapshot_s": None, "first_step_s": None, "steps": 0, "snapshot_message": ""}
    requeued, done = [], threading.Event()

    def sweep():
        while not done.wait(5):
            requeued.extend(recovery.recover_stale_jobs(TrainingJob)["requeued"])
        connection.close()

    def listen(progress):
        elapsed = time.perf_counter() - started
        if progress.get("stage") == "snapshot":
            seen["snapshot_s"], seen["snapshot_message"] = elapsed, progress["message"]
            return
        seen["first_step_s"] = seen["first_step_s"] or elapsed
        if seen["steps"] < TRAINING_STEPS <= progress["step"]:
            jobs.cancel(job, actor="benchmarks/scale.py")
        seen["steps"] = progress["step"]

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    started = time.perf_counter()
    try:
        with Timer() as timer:
            training_jobs.run_training_job(job.pk, task_id=job.celery_task_id, hostname="bench-scale",
                                           progress_listener=listen)
    finally:
        done.set()
        sweeper.join()
    job.refresh_from_db()
    return {"seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds, "status": job.status,
            "attempts": job.attempts, "requeued_as_lost": len(requeued), "error": job.error,
            "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S, "snapshot_seconds": seen["snapshot_s"],
            "snapshot_last_message": seen["snapshot_message"], "first_step_at_s": seen["first_step_s"],
            "steps_trained": seen["steps"], "config": job.config,
            "images": "every image row names one stored 64 x 48 JPEG (" + SHARED_IMAGE + ")"}


if __name__ == "__main__":
    main()
