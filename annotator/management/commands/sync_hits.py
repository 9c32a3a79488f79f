"""`python manage.py sync_hits BATCH`: bring the market's assignments of a batch into our rows."""
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Batch
from annotator.providers.services import sync_batch


class Command(BaseCommand):
    help = "Fetch the market's assignments of every published HIT of the batch (MTurk: ListAssignmentsForHIT)."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="batch name")

    def handle(self, *args, **options):
        batch = Batch.objects.filter(name=options["batch"]).first()
        if batch is None:
            raise CommandError(f"batch {options['batch']!r} does not exist")
        result = sync_batch(batch)
        self.stdout.write(
            f"batch {batch.name} ({batch.provider}): {result.hits} HITs synced, "
            f"{result.created} assignments new, {result.updated} updated, {result.decisions_sent} decisions sent"
        )
