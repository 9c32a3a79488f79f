from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.exports import services
from annotator.models import Batch, ExportJob


class Command(BaseCommand):
    help = "Export a batch's annotation byproducts as ImageNet-AB, COCO-AB or JSON lines (approved work only)."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="Batch name.")
        parser.add_argument("--format", required=True, choices=ExportJob.Format.values)
        parser.add_argument("--out", required=True, help="File to write (.tar.gz, .json or .jsonl).")
        parser.add_argument(
            "--include", choices=["rejected"], action="append", default=[],
            help="'--include rejected' adds the work that is not approved, flagged with its assignment state.",
        )

    def handle(self, *args, batch, format, out, include, **options):
        try:
            batch = Batch.objects.get(name=batch)
        except Batch.DoesNotExist:
            raise CommandError(f"batch {batch!r} does not exist") from None
        include_rejected = "rejected" in include
        try:
            services.validate_export(batch, format)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        total = services.count_records(batch, include_rejected)
        with tqdm(total=total, unit="record", desc=f"export {format}", disable=options["verbosity"] == 0) as bar:
            count = services.export_to_path(batch, format, out, include_rejected, on_records=bar.update)
        self.stdout.write(f"wrote {count} records of batch {batch.name} to {out}")
