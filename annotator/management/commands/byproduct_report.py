from django.core.management.base import BaseCommand, CommandError

from annotator import report
from annotator.models import Batch


class Command(BaseCommand):
    help = "Write the byproduct analysis report of a batch (seed 000, section E): HTML, JSON and PNG plots."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="Batch name.")
        parser.add_argument("--out", help="Folder to write report.html, report.json and the plots (default: the file "
                                          "storage, under reports/<batch>/<time>/, listed in the review console)")

    def handle(self, *args, batch, out, **options):
        try:
            batch = Batch.objects.select_related("dataset").get(name=batch)
        except Batch.DoesNotExist:
            raise CommandError(f"batch {batch!r} does not exist") from None
        path = report.write_report(batch, out) if out else report.write_report_to_storage(batch)
        self.stdout.write(f"wrote {path}")
