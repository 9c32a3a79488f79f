"""Automatic review of ImageNet-style HITs: milliseconds per HIT.

    .venv/bin/python benchmarks/review.py [--hits 2000] [--database-url postgres://...] [--reuse]

It (re)creates its own PostgreSQL database, migrates it and generates, with INSERT ... SELECT over
generate_series (seconds, not minutes), a published batch of submitted ImageNet-style HITs: 10 pages x 48
candidates each (36 in-class), one assignment per HIT with its 480 ImageNetRecord rows (960,000 for 2,000 HITs:
a click on 40% of them, hover events and a short mouse trace) and its 10 PageSubmission summaries; about 8% of
the workers are spammers (few selections, low recall) and 3% left pages undone. Then it measures:
  A. review on submit: annotator.review.services.auto_review(assignment) one HIT at a time, as the Celery task
     does (rules, decision, events, HIT status, signals; the providers' market calls are queued after commit
     by their receivers and are disconnected here, since they are not part of review);
  B. `review BATCH` dry run: annotator.review.services.review_batch over the whole batch;
  C. `review BATCH --apply` on the same HITs, submitted again: the rules decide them in chunks of 500 per
     transaction (bulk writes), which is how a whole batch is reviewed.
Prints ms per HIT for each and the reject rate (target: under 5 ms per HIT), with the machine's load and the
database's round-trip and commit latency, which bound A (about ten round trips and one commit per HIT).
With --reuse the assignments are put back to "submitted" (their review events removed) before measuring.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import IN_CLASS_PER_PAGE, ITEMS_PER_PAGE, PAGES_PER_HIT  # noqa: E402
from benchmarks.support import dataset_with_classes, fresh_database, setup_django  # noqa: E402

BATCH_NAME = "bench-review"
N_CATEGORIES = 100
N_IMAGES = 100_000
TARGET_MS_PER_HIT = 5.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/luab_bench_review")
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="keep the database if it already exists")
    return parser.parse_args()


def generate(n_hits):
    """Fill the database in SQL; every row is what the worker API would have stored."""
    from django.db import connection, transaction

    from annotator import models

    steps = [
        ("images", f"""
            INSERT INTO annotator_image (dataset_id, key, file, display_file, width, height, split, label_id, meta)
            SELECT %(dataset)s, 'img_' || i, 'images/' || i || '.JPEG', '', 500, 375, 'train',
                   %(first_category)s + (i %% {N_CATEGORIES}), '{{}}'
            FROM generate_series(0, {N_IMAGES - 1}) AS i"""),
        ("HITs", f"""
            INSERT INTO annotator_hit (batch_id, index, external_id, status, max_assignments, candidate_key)
            SELECT %(batch)s, i, '', 'published', 1, md5(random()::text)
            FROM generate_series(0, {n_hits - 1}) AS i"""),
        ("pages", f"""
            INSERT INTO annotator_hitpage (hit_id, index, category_id)
            SELECT h.id, p, %(first_category)s + ((h.index * {PAGES_PER_HIT} + p) %% {N_CATEGORIES})
            FROM annotator_hit h CROSS JOIN generate_series(0, {PAGES_PER_HIT - 1}) AS p
            WHERE h.batch_id = %(batch)s"""),
        ("candidates", f"""
            INSERT INTO annotator_pageitem (page_id, image_id, position, in_class, is_gold)
            SELECT pg.id, %(first_image)s + ((pg.id * {ITEMS_PER_PAGE} + k) %% {N_IMAGES}), k,
                   k < {IN_CLASS_PER_PAGE}, false
            FROM annotator_hitpage pg JOIN annotator_hit h ON h.id = pg.hit_id
            CROSS JOIN generate_series(0, {ITEMS_PER_PAGE - 1}) AS k
            WHERE h.batch_id = %(batch)s"""),
        ("workers", f"""
            INSERT INTO annotator_worker (provider, external_id, hashed_id, blocked, blocked_reason, created_at)
            SELECT 'link', 'W' || i, md5('W' || i) || md5('salt' || i), false, '', now()
            FROM generate_series(0, {n_hits - 1}) AS i"""),
        ("assignments", """
            INSERT INTO annotator_assignment (uuid, hit_id, worker_id, external_id, state, interface_variant,
                turk_submit_to, completion_code, accepted_at, submitted_at, decision_source, review, feedback,
                bonus_paid, entry_address)
            SELECT md5(h.id::text)::uuid, h.id, w.id, '', 'submitted', 'default', '', '',
                   now() - interval '9 minutes', now(), '', '{}', '', 0, ''
            FROM annotator_hit h JOIN annotator_worker w ON w.external_id = 'W' || h.index
            WHERE h.batch_id = %(batch)s"""),
        # Spammers (hit index % 12 == 0) click 3% of the candidates, others 40% (mostly in-class ones).
        ("ImageNet records", """
            INSERT INTO annotator_imagenetrecord (assignment_id, page_id, image_id, selected, selected_record,
                deselected_record, hovered_record, mouse_tracking, image_position, image_width, image_height)
            SELECT a.id, it.page_id, it.image_id, sel.selected,
                   CASE WHEN sel.selected THEN '[{"x": 0.52, "y": 0.47, "time": 1700000001000}]'::jsonb
                        ELSE '[]'::jsonb END,
                   '[]'::jsonb,
                   '[{"action": "enter", "time": 1700000000000}, {"action": "leave", "time": 1700000002000}]'::jsonb,
                   '[{"x": 0.1, "y": 0.2, "time": 1700000000100}, {"x": 0.3, "y": 0.35, "time": 1700000000500},
                     {"x": 0.5, "y": 0.46, "time": 1700000000900}]'::jsonb,
                   jsonb_build_object('x', 160 * (it.position %% 8), 'y', 160 * (it.position / 8)), 150, 150
            FROM annotator_assignment a
            JOIN annotator_hit h ON h.id = a.hit_id
            JOIN annotator_hitpage pg ON pg.hit_id = h.id
            JOIN annotator_pageitem it ON it.page_id = pg.id
            CROSS JOIN LATERAL (SELECT CASE WHEN h.index %% 12 = 0 THEN (it.position * 7 + pg.index) %% 33 = 0
                                            ELSE (it.in_class AND (it.position + pg.index) %% 9 <> 0)
                                                 OR (it.position + h.index) %% 29 = 0 END AS selected) sel
            WHERE h.batch_id = %(batch)s"""),
        # Summaries as the page save computes them; 3% of HITs (index % 33 == 5) have 2 pages left undone.
        ("page submissions", """
            INSERT INTO annotator_pagesubmission (assignment_id, page_id, client_save_id, saved_at, time_spent_ms,
                client, n_selected, n_in_class, n_in_class_selected, n_gt_categories, n_tagged_correct, n_icons,
                n_icons_on_mask)
            SELECT r.assignment_id, r.page_id, md5(r.assignment_id || ':' || r.page_id)::uuid, now(), 54000, '{}',
                   count(*) FILTER (WHERE r.selected), count(*) FILTER (WHERE it.in_class),
                   count(*) FILTER (WHERE r.selected AND it.in_class), 0, 0, 0, 0
            FROM annotator_imagenetrecord r
            JOIN annotator_pageitem it ON it.page_id = r.page_id AND it.image_id = r.image_id
            JOIN annotator_hitpage pg ON pg.id = r.page_id
            JOIN annotator_hit h ON h.id = pg.hit_id
            WHERE h.batch_id = %(batch)s AND NOT (h.index %% 33 = 5 AND pg.index >= 8)
            GROUP BY r.assignment_id, r.page_id"""),
    ]
    with transaction.atomic():
        dataset, categories = dataset_with_classes("bench-review", N_CATEGORIES)
        batch = models.Batch.objects.create(
            name=BATCH_NAME, dataset=dataset, task_kind=models.TaskKind.IMAGENET, status=models.Batch.Status.PUBLISHED
        )
        params = {"dataset": dataset.pk, "batch": batch.pk, "first_category": categories[0].pk}
        with connection.cursor() as cursor:
            for name, sql in steps:
                started = time.perf_counter()
                if name == "HITs":
                    cursor.execute("SELECT min(id) FROM annotator_image WHERE dataset_id = %s", [dataset.pk])
                    params["first_image"] = cursor.fetchone()[0]
                cursor.execute(sql, params)
                print(f"  {name}: {cursor.rowcount:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
            cursor.execute("ANALYZE annotator_assignment, annotator_pagesubmission, annotator_hitpage, annotator_hit")
    return batch


def main():
    args = parse_args()
    fill = fresh_database(args.database_url, args.reuse)
    setup_django(args.database_url)
    from annotator import signals
    from annotator.models import Assignment, Batch, ImageNetRecord
    from annotator.review import services

    if fill:
        print(f"generating {args.hits:,} HITs in {args.database_url}", flush=True)
        started = time.perf_counter()
        batch = generate(args.hits)
        print(f"generated in {time.perf_counter() - started:.1f} s", flush=True)
    else:
        batch = Batch.objects.get(name=BATCH_NAME)
    records = ImageNetRecord.objects.filter(assignment__hit__batch=batch).count()
    ids = list(Assignment.objects.filter(hit__batch=batch).values_list("pk", flat=True))
    print(f"{len(ids):,} HITs, {records:,} ImageNet records", flush=True)

    for uid in ("providers.queue_decision", "providers.queue_repost"):
        signals.assignments_decided.disconnect(dispatch_uid=uid)
        signals.hit_needs_repost.disconnect(dispatch_uid=uid)

    resubmit(batch)
    started = time.perf_counter()
    result = services.review_batch(batch, apply=False)
    dry_run_ms = (time.perf_counter() - started) * 1000 / max(1, result.reviewed)

    started = time.perf_counter()
    rejected = 0
    for assignment_id in ids:
        rejected += not services.auto_review(assignment_id).approve
    on_submit_ms = (time.perf_counter() - started) * 1000 / len(ids)

    resubmit(batch)
    started = time.perf_counter()
    applied = services.review_batch(batch, apply=True)
    apply_ms = (time.perf_counter() - started) * 1000 / max(1, applied.reviewed)

    def verdict(ms):
        return f"target < {TARGET_MS_PER_HIT} ms: {'met' if ms < TARGET_MS_PER_HIT else 'NOT met'}"

    round_trip_ms, commit_ms = database_latency()
    print(f"machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; database round trip "
          f"{round_trip_ms:.2f} ms, smallest committed write {commit_ms:.2f} ms")
    print(f"A. review on submit, one HIT per transaction: {on_submit_ms:.2f} ms per HIT over {len(ids):,} HITs "
          f"({verdict(on_submit_ms)}); rejected {rejected:,} ({rejected / len(ids):.1%})")
    print(f"B. review BATCH (dry run): {dry_run_ms:.2f} ms per HIT over {result.reviewed:,} HITs "
          f"({verdict(dry_run_ms)}); reject rate {result.rejection_rate:.1%}")
    print(f"C. review BATCH --apply: {apply_ms:.2f} ms per HIT over {applied.reviewed:,} HITs "
          f"({verdict(apply_ms)}); {applied.changed:,} decided, reject rate {applied.rejection_rate:.1%}")


def database_latency():
    """Median ms of a SELECT 1 and of a one-row write committed, for reading the figures above."""
    import statistics

    from django.db import connection, transaction

    selects, commits = [], []
    with connection.cursor() as cursor:
        for _ in range(50):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            selects.append(time.perf_counter() - started)
    for _ in range(20):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE annotator_batch SET status = status WHERE name = %s", [BATCH_NAME])
        commits.append(time.perf_counter() - started)
    return statistics.median(selects) * 1000, statistics.median(commits) * 1000


def resubmit(batch):
    """Put the batch's assignments back to submitted, as if nobody had reviewed them (events are append-only in
    the app, so the benchmark removes its own review events in SQL)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM annotator_event WHERE batch_id = %s", [batch.pk])
        cursor.execute(
            "UPDATE annotator_assignment SET state = 'submitted', decision_source = '', review = '{}', feedback = '',"
            " reviewed_at = NULL WHERE hit_id IN (SELECT id FROM annotator_hit WHERE batch_id = %s)", [batch.pk]
        )
        cursor.execute("UPDATE annotator_hit SET status = 'published' WHERE batch_id = %s", [batch.pk])


if __name__ == "__main__":
    main()
