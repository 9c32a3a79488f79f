"""Fault: the Celery worker killed (kill -9, whole process group) mid-review and mid-training; then the reconciliation.

    .venv/bin/python benchmarks/faults/celery_killed.py [--review-kills 3] [--workers 40 --minutes 2 --pace 10]

The crowd (benchmarks/campaign.py) works and submits while the one Celery worker (queues default,gpu, beat inside)
reviews. Mid-review: --review-kills times the worker's whole process group gets SIGKILL (main process, pool, beat:
a lost machine) while it is taking reviews, and a new worker starts --down-seconds later under a new name. With
Redis the killed worker's unacknowledged messages (counted right after each kill) are not redelivered before the
visibility timeout (a day): beat's sweeper (annotator.sweeper, SWEEP_AFTER=20 s in the Stack) reviews them.
Mid-training: a training job (a tiny CPU model on its own small dataset) runs on the worker; once it has saved a
checkpoint (epoch 3 under way) the worker is killed the same way and restarted under a new name; the training
sweeper (training.tasks.sweep_jobs; TRAINING_HEARTBEAT_TIMEOUT=20 s here) sees the silent heartbeat and requeues it,
and the new worker resumes it from its last checkpoint ("resuming ... at epoch N", N >= 1) and finishes it
(cancelled only if it is not done within --training-timeout).

Pass (exit status 0): the reconciliation holds (every acknowledged batch and save stored once, no duplicates, every
submitted assignment decided by the automatic review) and the training job resumed from a checkpoint and succeeded.
"""
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import campaign  # noqa: E402
from benchmarks.support import wait_until  # noqa: E402

HEARTBEAT_TIMEOUT_S = 20
# A tiny model on 6 images, many short epochs: a checkpoint every epoch, long enough to be killed mid-run.
TRAINING_CONFIG = {"model": "test_resnet", "epochs": 150, "batch_size": 4, "img_size": 32, "lr": 0.01,
                   "device": "cpu", "log_every": 1}


def unacked(stack):
    """Messages the broker handed to a worker and did not get back (kombu's Redis transport keeps them here)."""
    import redis

    return redis.Redis(port=stack.redis_port, socket_timeout=5).hlen("unacked")


def main():
    parser = campaign.argument_parser(__doc__, "celerykill", **{**campaign.FAULT_LOAD, "pace": 10.0}, celery_concurrency=2)
    parser.add_argument("--review-kills", type=int, default=3, help="kills of the worker while it reviews")
    parser.add_argument("--down-seconds", type=float, default=3.0, help="how long the worker stays dead")
    parser.add_argument("--training-timeout", type=float, default=300.0,
                        help="seconds to wait for each training step (a checkpoint, the resumed attempt)")
    args = parser.parse_args()
    training = {}

    def kill_and_restart(stack, what):
        stack.kill_celery()
        left = unacked(stack)
        time.sleep(args.down_seconds)
        stack.start_celery()
        print(f"  kill -9 of the Celery worker {what}: {left} unacknowledged messages left behind; "
              f"new worker {stack.celery.pid}", flush=True)
        return left

    def fault(stack, driver):
        from django.db import connection

        from annotator.models import Assignment
        from tests.training.job_data import tiny_imagenet_dataset
        from training.services import jobs, training_jobs
        from training.models import JobStatus, TrainingJob

        time.sleep(driver.ramp_s)
        interval = (driver.seconds - driver.ramp_s) / (args.review_kills + 2)
        lost_messages = []
        waiting = Assignment.objects.filter(hit__batch__name__in=campaign.BATCH_NAMES.values(),
                                            state=Assignment.State.SUBMITTED)
        for _ in range(args.review_kills):
            # Kill when a review is due: the first moment within the interval a submission waits for its review.
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not waiting.exists():
                time.sleep(0.1)
            print(f"  {waiting.count()} submitted assignments waiting for review at the kill", flush=True)
            lost_messages.append(kill_and_restart(stack, "mid-review"))
            time.sleep(max(0.0, deadline - time.monotonic()))
        connection.close()

        dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=0)
        job = training_jobs.create_training_job(dataset=dataset, config=TRAINING_CONFIG, source=TrainingJob.Source.API)
        checkpoint = stack.var_dir / "training" / str(job.pk) / "checkpoint.pt"

        def refreshed():
            job.refresh_from_db()
            return job

        started = wait_until(lambda: refreshed().status == JobStatus.RUNNING and checkpoint.exists()
                             and (job.progress.get("epoch") or 0) >= 3, args.training_timeout, poll_s=0.2)
        if not started:
            training.update(ok=False, why=f"job {job.pk} never saved a checkpoint ({job.status}: {job.error})")
            return f"{sum(lost_messages)} review messages left behind by {args.review_kills} kills; training: " \
                   f"{training['why']}"
        epoch_at_kill, attempts_at_kill = job.progress.get("epoch"), job.attempts
        kill_and_restart(stack, f"mid-training (job {job.pk} during epoch {epoch_at_kill}, attempt {job.attempts})")
        killed_at = time.monotonic()
        resumed = wait_until(lambda: refreshed().attempts > attempts_at_kill and "resuming" in (job.log_tail or ""),
                             args.training_timeout + HEARTBEAT_TIMEOUT_S)
        match = re.search(r"resuming \S+ at epoch (\d+)", job.log_tail or "")
        if resumed and match and int(match.group(1)) >= 1:
            training.update(ok=True, why=(
                f"job {job.pk} killed during epoch {epoch_at_kill}, requeued by the sweeper and resumed after "
                f"{match.group(1)} saved epochs (attempt {job.attempts}) {time.monotonic() - killed_at:.0f} s after "
                "the kill"))
        else:
            training.update(ok=False, why=(f"job {job.pk} not resumed from a checkpoint: {job.status}, attempt "
                                           f"{job.attempts}, error {job.error!r}, log {(job.log_tail or '')[-300:]!r}"))
        if not wait_until(lambda: refreshed().is_finished, args.training_timeout):
            jobs.cancel(job)
            wait_until(lambda: refreshed().is_finished, 120)
        if job.status != JobStatus.SUCCEEDED:
            training.update(ok=False, why=training["why"] + f"; then {job.status}: {job.error}")
        connection.close()
        return (f"{sum(lost_messages)} review messages left behind by {args.review_kills} kills {lost_messages}; "
                f"training: {training['why']}; the job ended {job.status} after {job.attempts} attempts")

    # A silent job counts as lost after 20 s, not 5 minutes.
    driver, result = campaign.run_campaign(args, during=fault, title="Celery worker kill -9",
                                           env={"TRAINING_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S)})
    print(f"training resumed from its checkpoint: {'yes' if training.get('ok') else 'NO'}")
    sys.exit(0 if result.ok and training.get("ok") else 1)


if __name__ == "__main__":
    main()
