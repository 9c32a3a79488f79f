from django.core.management.base import BaseCommand, CommandError

from annotator.importers import DatasetImportError, import_coco
from annotator.models import Split


class Command(BaseCommand):
    help = ("Import COCO instances (images, categories with supercategory, annotations with bbox and segmentation) "
            "into a COCO-style dataset. Re-running adds only new images.")

    def add_arguments(self, parser):
        parser.add_argument("--images", required=True, help="Folder the file_name entries are relative to.")
        parser.add_argument("--annotations", required=True, help="instances_*.json")
        parser.add_argument("--name", required=True, help="Dataset name (a slug); several splits may share it.")
        parser.add_argument("--split", choices=Split.values, default=Split.TRAIN)
        parser.add_argument("--defer-display", action="store_true",
                            help="Leave the display versions to a Celery worker (large sets).")

    def handle(self, *args, images, annotations, name, split, defer_display, **options):
        try:
            summary = import_coco(images, annotations, name, split=split, make_display=not defer_display,
                                  progress=options["verbosity"] > 0)
        except DatasetImportError as exc:
            raise CommandError(f"{exc}\nNothing was imported.") from exc
        self.stdout.write(self.style.SUCCESS(str(summary)))
