from django.core.management.base import BaseCommand, CommandError

from annotator.importers import DatasetImportError, import_imagenet


class Command(BaseCommand):
    help = ("Import an ImageNet-style folder: DIR/train/<wnid>/*.JPEG, optional DIR/val/ and DIR/shifted/, "
            "LOC_synset_mapping.txt, gloss.txt and DIR/bbox/<wnid>/<stem>.xml. Re-running adds only new images.")

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--name", required=True, help="Dataset name (a slug); reused on re-import.")
        parser.add_argument("--defer-display", action="store_true",
                            help="Leave the display versions to a Celery worker (large sets).")

    def handle(self, *args, directory, name, defer_display, **options):
        try:
            summary = import_imagenet(directory, name, make_display=not defer_display,
                                      progress=options["verbosity"] > 0)
        except DatasetImportError as exc:
            raise CommandError(f"{exc}\nNothing was imported.") from exc
        self.stdout.write(self.style.SUCCESS(str(summary)))
