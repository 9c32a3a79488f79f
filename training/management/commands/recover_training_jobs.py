"""The training sweeper from cron: requeue or fail the training and inference jobs whose worker is gone (heartbeat
older than TRAINING_HEARTBEAT_TIMEOUT), and send the queued jobs a broker outage left unsent.

Celery workers recover their own jobs when they start, and beat runs the same sweep (training.tasks.sweep_jobs)
every SWEEP_INTERVAL; run this from cron when there is no beat or the workers may stay down.
"""
from django.core.management.base import BaseCommand

from training.services import recovery


class Command(BaseCommand):
    help = ("Requeue (to resume from the last checkpoint) or fail running training and inference jobs whose worker "
            "is gone; send queued jobs the broker did not take.")

    def handle(self, *args, **options):
        outcome = recovery.sweep_jobs()
        self.stdout.write(
            f"{len(outcome['requeued'])} requeued, {len(outcome['failed'])} failed"
            + (f" (requeued: {outcome['requeued']}, failed: {outcome['failed']})"
               if outcome["requeued"] or outcome["failed"] else "")
            + f"; inference jobs {len(outcome['inference_requeued'])} requeued,"
              f" {len(outcome['inference_failed'])} failed; {len(outcome['resent'])} unsent jobs sent"
        )
