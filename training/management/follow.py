"""Follow a queued training or inference job from the command line while a Celery worker runs it."""
import time

from training.models import FINISHED_STATUSES

POLL_SECONDS = 1.0


def follow(job, show, timeout=None):
    """Re-read the job row until it is finished, calling show(progress) whenever its progress changes; returns the
    finished job (or the job as it stands when timeout seconds have passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    while True:
        job.refresh_from_db()
        if job.progress and job.progress != seen:
            seen = dict(job.progress)
            show(seen)
        if job.status in FINISHED_STATUSES or (deadline is not None and time.monotonic() > deadline):
            return job
        time.sleep(POLL_SECONDS)
