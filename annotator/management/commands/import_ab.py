from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.importers import ab
from annotator.models import Dataset, ExportJob


class Command(BaseCommand):
    help = (
        "Attach published ImageNet-AB (tar.gz of XML) or COCO-AB (JSON) byproducts to an imported dataset, as an "
        "approved batch of round 0 that training picks up. All or nothing; unmatched records are counted."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The ImageNet-AB tarball or the COCO-AB JSON file.")
        parser.add_argument(
            "--format", required=True, choices=[ExportJob.Format.IMAGENET_AB, ExportJob.Format.COCO_AB]
        )
        parser.add_argument("--dataset", required=True, help="Name of the dataset the images were imported into.")
        parser.add_argument("--batch", help="Name of the batch to create (default: <dataset>-<format>-import).")

    def handle(self, *args, path, format, dataset, batch, **options):
        path = Path(path)
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            dataset = Dataset.objects.get(name=dataset)
        except Dataset.DoesNotExist:
            raise CommandError(f"dataset {dataset!r} does not exist") from None
        quiet = options["verbosity"] == 0
        try:
            if format == ExportJob.Format.IMAGENET_AB:
                with open(path, "rb") as tarball, tqdm(unit="image", desc="import imagenet-ab", disable=quiet) as bar:
                    result = ab.import_imagenet_ab(dataset, tarball, str(path), batch, on_images=bar.update)
            else:
                with open(path, encoding="utf-8") as json_file, \
                        tqdm(unit="record", desc="import coco-ab", disable=quiet) as bar:
                    result = ab.import_coco_ab(dataset, json_file, str(path), batch, on_records=bar.update)
        except ab.ImportFailed as error:
            raise CommandError(f"{path}: {error} (nothing was imported)") from None
        self.stdout.write(
            f"imported {result.records} records into batch {result.batch.name} "
            f"({result.page_summaries} page summaries for review and the report)"
        )
        if result.unmatched_records:
            self.stdout.write(self.style.WARNING(
                f"{result.unmatched_records} records match no image of dataset {dataset.name}, not imported "
                f"(e.g. {', '.join(result.unmatched_examples)})"
            ))
        if result.duplicate_records:
            self.stdout.write(self.style.WARNING(f"{result.duplicate_records} duplicate records skipped"))
