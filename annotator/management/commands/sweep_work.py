"""Queue again the reviews and market calls a broker outage or a dead Celery worker left undone (annotator.sweeper),
and expire the assignments past their deadline (their places are free again).

Beat runs the same sweep every SWEEP_INTERVAL seconds; run this from cron where there is no beat, or with --inline
to do the work in this process while the broker or every worker is down.
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotator import sweeper


class Command(BaseCommand):
    help = "Queue (or with --inline, do) the reviews and market calls left undone by a broker outage or a dead worker."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=None, metavar="SECONDS",
                            help=f"only work left undone this long (default SWEEP_AFTER, {settings.SWEEP_AFTER:g})")
        parser.add_argument("--inline", action="store_true", help="do the work here instead of queueing it")
        parser.add_argument("--limit", type=int, default=1000, help="at most this many of each kind (default 1000)")

    def handle(self, *args, older_than, inline, limit, **options):
        if older_than is not None and older_than < 0:
            raise CommandError(f"--older-than: {older_than:g} seconds; give 0 or more")
        expired = sweeper.expire_overdue_assignments(limit=limit)
        outcome = sweeper.sweep_work(older_than=older_than, inline=inline, limit=limit)
        verb = "done" if inline else "queued"
        self.stdout.write(", ".join(f"{n} {key}" for key, n in outcome.items()) + f" {verb}; {expired} expired")
