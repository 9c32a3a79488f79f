"""Fault: Redis (the Celery broker, and the throttle cache) stopped for 30 s under load; then the reconciliation.

    .venv/bin/python benchmarks/faults/redis_down.py [--down-seconds 30] [--workers 40 --minutes 2 --pace 5]

The Stack (benchmarks/campaign.py) runs its own redis-server (`--save ""`: what was queued is lost with it) as the
broker (db 0) and the throttle cache (db 1). Mid-run it is stopped, left down --down-seconds, and started again,
empty. Meanwhile the web processes cannot queue the reviews of the submissions they take (config.celery.send_task
logs it and goes on), the throttle cache fails open (config.cache), and the Celery worker waits to reconnect.
Afterwards beat's sweeper (annotator.sweeper, SWEEP_AFTER=20 s in the Stack) queues every review left undone.

Pass (exit status 0): every submit, page save and event flush made during the outage got its success answer
(no 5xx, none slower than --max-request-s), and the reconciliation holds: every acknowledged batch and save stored
once, no duplicates, every submitted assignment decided by the automatic review.
"""
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import campaign  # noqa: E402


class AttemptLog:
    """Every request attempt with its end time, wrapped around the driver's Stats (the campaign keeps only
    successes' times)."""

    def __init__(self, stats):
        self._lock = threading.Lock()
        self.attempts = []  # (monotonic end, kind, status or None, ms)
        record = stats.attempt

        def attempt(kind, ms, status, ok):
            with self._lock:
                self.attempts.append((time.monotonic(), kind, status, ms))
            record(kind, ms, status, ok)

        stats.attempt = attempt

    def between(self, start, end):
        with self._lock:
            return [a for a in self.attempts if start <= a[0] <= end]


def main():
    parser = campaign.argument_parser(__doc__, "redisdown", **campaign.FAULT_LOAD)
    parser.add_argument("--down-seconds", type=float, default=30.0, help="how long Redis stays down")
    parser.add_argument("--at", type=float, default=0.4,
                        help="when to stop Redis, as a fraction of the time after the ramp (default 0.4)")
    parser.add_argument("--max-request-s", type=float, default=5.0,
                        help="a request during the outage slower than this counts as held up by the broker")
    args = parser.parse_args()
    outage = {}

    def fault(stack, driver):
        log = AttemptLog(driver.stats)
        outage["log"] = log
        time.sleep(driver.ramp_s + (driver.seconds - driver.ramp_s) * args.at)
        before = driver.ledger.counts()
        outage["start"] = time.monotonic()
        stack.stop_redis()
        print(f"  Redis stopped; acknowledged so far {before}", flush=True)
        time.sleep(args.down_seconds)
        outage["restart"] = time.monotonic()
        stack.start_redis()
        outage["end"] = time.monotonic()
        after = driver.ledger.counts()
        gained = {key: after[key] - before[key] for key in after}
        return (f"Redis down {outage['restart'] - outage['start']:.1f} s (back, empty, after "
                f"{outage['end'] - outage['start']:.1f} s); acknowledged meanwhile: {gained}")

    driver, result = campaign.run_campaign(args, during=fault, title="Redis down")
    during = outage["log"].between(outage["start"], outage["restart"])
    by_kind = {}
    for _, kind, status, ms in during:
        entry = by_kind.setdefault(kind, {"attempts": 0, "ok": 0, "5xx": 0, "no answer": 0, "max_ms": 0.0})
        entry["attempts"] += 1
        entry["ok"] += status is not None and status < 400
        entry["5xx"] += status is not None and status >= 500
        entry["no answer"] += status is None
        entry["max_ms"] = round(max(entry["max_ms"], ms), 1)
    print("requests during the outage, by type:")
    for kind, entry in sorted(by_kind.items()):
        print(f"  {kind}: {entry}")
    failed = sum(entry["5xx"] + entry["no answer"] for entry in by_kind.values())
    slow = [(kind, round(ms)) for _, kind, status, ms in during if ms > args.max_request_s * 1000]
    submits_ok = by_kind.get("submit", {}).get("ok", 0)
    print(f"outage verdict: {failed} requests failed (5xx or no answer), {len(slow)} slower than "
          f"{args.max_request_s:g} s {slow[:5]}, {submits_ok} submits answered with success while Redis was down")
    ok = result.ok and failed == 0 and not slow and submits_ok > 0
    if submits_ok == 0:
        print("  (no submit fell inside the outage: run longer or with more workers to test that)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
