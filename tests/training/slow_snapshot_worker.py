"""`python -m tests.training.slow_snapshot_worker <celery arguments>`: a Celery worker whose data snapshots read one
row per chunk and pause SNAPSHOT_CHUNK_DELAY_S after each, so a tiny dataset's snapshot takes as long as a paper-sized
one's (tests/training/test_jobs.py: a snapshot longer than the heartbeat timeout)."""
import os
import time

from celery.__main__ import main
from celery.signals import worker_process_init


@worker_process_init.connect
def slow_down_snapshots(**kwargs):
    from training import manifest_builder

    delay = float(os.environ["SNAPSHOT_CHUNK_DELAY_S"])
    read = manifest_builder.ManifestBuilder.read

    def slow_read(self, step, rows, total):
        for chunk in read(self, step, rows, total):
            time.sleep(delay)
            yield chunk

    manifest_builder.CHUNK_SIZE = 1
    manifest_builder.ManifestBuilder.read = slow_read


if __name__ == "__main__":
    main()
