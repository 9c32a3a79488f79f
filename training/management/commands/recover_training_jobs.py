"""Requeue or fail the running training jobs whose worker is gone (heartbeat older than TRAINING_HEARTBEAT_TIMEOUT).

Celery workers do the same when they start; run this from cron when workers may stay down.
"""
from django.core.management.base import BaseCommand

from training import services


class Command(BaseCommand):
    help = "Requeue (to resume from the last checkpoint) or fail running training jobs whose worker is gone."

    def handle(self, *args, **options):
        outcome = services.recover_stale_jobs()
        self.stdout.write(
            f"{len(outcome['requeued'])} requeued, {len(outcome['failed'])} failed"
            + (f" (requeued: {outcome['requeued']}, failed: {outcome['failed']})" if any(outcome.values()) else "")
        )
