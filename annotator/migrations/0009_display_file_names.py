"""Display versions made before were stored as `display/<dataset>/<image key>.jpg`: the worker's browser loads
them, and the key gives the answer away (an ImageNet file stem starts with its class's wnid; a COCO image id finds
the public annotations). Each is copied to a name that reveals nothing (`display/<32 random hex>.jpg`, as
annotator.images.display_name() makes them now) and the old file deleted. A row whose file is missing is emptied:
the worker path makes the display version again the first time a page shows it."""
import logging
import re
import secrets

from django.core.files.storage import default_storage
from django.db import migrations

logger = logging.getLogger(__name__)

OPAQUE = re.compile(r"^display/[0-9a-f]{32}\.jpg$")


def rename_display_files(apps, schema_editor):
    Image = apps.get_model("annotator", "Image")
    to_rename = Image.objects.exclude(display_file="").only("pk", "display_file").order_by("pk")
    renamed = emptied = 0
    for image in to_rename.iterator(chunk_size=1000):
        old = image.display_file.name
        if OPAQUE.match(old):
            continue
        new = ""
        if default_storage.exists(old):
            with default_storage.open(old, "rb") as stored:
                new = default_storage.save(f"display/{secrets.token_hex(16)}.jpg", stored)
            renamed += 1
        else:
            emptied += 1
        Image.objects.filter(pk=image.pk).update(display_file=new)
        if new:
            default_storage.delete(old)  # its name is guessable from the key: it must not stay public
    if renamed or emptied:
        logger.warning("display versions: %d renamed to names that reveal nothing, %d missing files forgotten",
                       renamed, emptied)


class Migration(migrations.Migration):
    # Each image is renamed on its own (copy, point the row at the copy, delete the old file): a migration stopped
    # half way leaves no row pointing at a deleted file, and a second run takes up the rest.
    atomic = False

    dependencies = [
        ("annotator", "0008_assignment_deadline"),
    ]

    operations = [
        migrations.RunPython(rename_display_files, migrations.RunPython.noop, elidable=True),
    ]
