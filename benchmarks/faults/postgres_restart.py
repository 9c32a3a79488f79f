"""Fault: restart PostgreSQL under load (a private cluster, never the shared server); then the reconciliation.

    .venv/bin/python benchmarks/faults/postgres_restart.py [--restarts 2 --down-seconds 5 --mode fast]
                                                          [--workers 40 --minutes 2 --pace 5]

The Stack runs its own PostgreSQL 15 cluster (initdb into /tmp/<name>-pg, port --postgres-port, default 55433).
While the crowd works, the cluster is stopped (--mode fast: sessions are ended and open transactions rolled back;
immediate: a crash, recovered from WAL on start), left down --down-seconds, and started again, --restarts times.
gunicorn's and the Celery worker's connections die with it; requests meanwhile fail and the clients retry with
the same batch_id / save_id. Pass: every acknowledged event batch and page save stored exactly once, no
duplicates, every submitted assignment reviewed (a review interrupted by the restart must still happen).
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import campaign  # noqa: E402


def main():
    parser = campaign.argument_parser(__doc__, "pgrestart", **campaign.FAULT_LOAD)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--down-seconds", type=float, default=5.0, help="how long PostgreSQL stays down")
    parser.add_argument("--mode", choices=("fast", "immediate"), default="fast", help="pg_ctl stop mode")
    args = parser.parse_args()

    def fault(stack, driver):
        def restart():
            started = time.monotonic()
            stack.restart_postgres(mode=args.mode, down_s=args.down_seconds)
            print(f"  PostgreSQL restarted ({args.mode}), down {time.monotonic() - started:.1f} s; "
                  f"acknowledged so far {driver.ledger.counts()}", flush=True)

        campaign.at_intervals(driver, args.restarts, restart)
        return f"{args.restarts} restarts of PostgreSQL ({args.mode}, {args.down_seconds:g} s down each)"

    driver, result = campaign.run_campaign(args, during=fault, own_postgres=True, title="PostgreSQL restart")
    campaign.print_failed_attempts(driver, "the restarts")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
