"""`python manage.py export_decisions BATCH --out decisions.csv`: the link market's approve/reject/bonus file."""
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Batch
from annotator.providers.link import write_decisions_csv


class Command(BaseCommand):
    help = "Write one CSV row per approved or rejected assignment (market worker and assignment ids, feedback, bonus)."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="batch name")
        parser.add_argument("--out", required=True, help="CSV file to write ('-' for standard output)")

    def handle(self, *args, **options):
        batch = Batch.objects.filter(name=options["batch"]).first()
        if batch is None:
            raise CommandError(f"batch {options['batch']!r} does not exist")
        if options["out"] == "-":
            write_decisions_csv(batch, self.stdout)
            return
        with open(options["out"], "w", newline="", encoding="utf-8") as file:
            rows = write_decisions_csv(batch, file)
        self.stderr.write(f"batch {batch.name}: {rows} decisions written to {options['out']}")
