"""Soak test (issue 9): the simulated crowd at scale against gunicorn + PostgreSQL + Redis + a Celery worker.

    .venv/bin/python benchmarks/soak.py [--workers 500 --minutes 10] [--pace 1] [--database-url postgres://...]

It (re)creates its own database, imports the demo image sets into one ImageNet-style batch (10 pages x 48
candidates) and one COCO-style batch (20 images), starts its own redis-server (--redis-port), gunicorn (gthread)
and a Celery worker (queues default,gpu), and lets --workers simulated workers (default mix) work whole HITs of
both kinds over HTTP at a human pace (--pace speeds the human clock up) for --minutes: events flushed in batches
every few seconds, each page saved when the person would, then submitted; every request retried like the task
page retries. Then no HIT is started; whoever is inside one hands in what is saved (--finish complete: works it
to the end). Prints held load (requests/s, saves/s), p50/p95/p99 latency per request type and the
reconciliation: every acknowledged event batch and page stored exactly once, no duplicates, every submitted
assignment reviewed by the automatic review. Exit status 1 when the reconciliation fails.
Target: p99 < 300 ms for page saves at 500 workers (the load generator shares the machine; say so).
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import campaign  # noqa: E402


def main():
    parser = campaign.argument_parser(__doc__, "soak", workers=500, minutes=10.0)
    parser.add_argument("--json", help="also write the figures and the reconciliation to this file")
    args = parser.parse_args()
    driver, result = campaign.run_campaign(args, title="soak")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "stats": driver.stats.summary(),
                                               "counters": dict(driver.counters),
                                               "reconciliation": result.as_dict()}, indent=2, default=str))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
