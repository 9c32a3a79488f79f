"""Fault: kill -9 a gunicorn worker mid-request, several times, under load; then the same reconciliation.

    .venv/bin/python benchmarks/faults/gunicorn_kill9.py [--kills 5] [--workers 40 --minutes 2 --pace 5]

The crowd (benchmarks/campaign.py) works whole HITs over HTTP; every run-time / (kills + 1) seconds one gunicorn
worker that is on the CPU (so most likely inside a request: a page save, an event flush, a submit) gets SIGKILL
and the master starts another. The clients see a dropped connection and retry with the same batch_id / save_id,
as the task page does. Pass: every acknowledged event batch and page save stored exactly once, no duplicates,
every submitted assignment reviewed (exit status 0); the number of kills and of requests that saw them is printed.
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import campaign  # noqa: E402


def main():
    parser = campaign.argument_parser(__doc__, "kill9", **campaign.FAULT_LOAD)
    parser.add_argument("--kills", type=int, default=5, help="gunicorn workers to kill, spread over the run")
    args = parser.parse_args()

    def fault(stack, driver):
        victims = []

        def kill():
            victims.append(stack.kill9_gunicorn_worker(busy=True))
            time.sleep(1)
            print(f"  kill -9 gunicorn worker {victims[-1]}; workers now {stack.gunicorn_worker_pids()}", flush=True)

        campaign.at_intervals(driver, args.kills, kill)
        return f"{len(victims)} gunicorn workers killed with SIGKILL: {victims}"

    driver, result = campaign.run_campaign(args, during=fault, title="gunicorn kill -9")
    campaign.print_failed_attempts(driver, "the kills")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
