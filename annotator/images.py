"""Image files in storage: decoding checks and the display-size versions made once per image.

Display versions are what the worker's browser loads, so their names say nothing: `display/<32 random hex>.jpg`,
never the image key (an ImageNet file stem starts with its class's wnid; a COCO image id finds the public
annotations). Migration 0009 renamed the ones made before under `display/<dataset>/<key>.jpg`. The 2x version for
high-density screens has a random name of its own, `display/2x/<32 random hex>.jpg`.
"""
import io
import logging
import re
import secrets

from django.core.files.base import ContentFile
from PIL import Image as PilImage
from tqdm import tqdm

logger = logging.getLogger(__name__)

# Longest side of the display version by task kind, sized for the page: ImageNet candidates fit cells about 150 px
# wide, a COCO page shows its photo 450 px high (up to 640 px wide). The 2x version doubles it, made only when the
# original is larger than the 1x version: nothing is ever enlarged.
DISPLAY_MAX_SIDE = {"imagenet": 256, "coco": 640}
DISPLAY_JPEG_QUALITY = 85


def decode(data):
    """Fully decode image bytes (a truncated or corrupt file raises OSError/SyntaxError); returns an RGB image."""
    with PilImage.open(io.BytesIO(data)) as opened:
        opened.load()
        return opened.convert("RGB")


def display_version_bytes(pil_image, max_side):
    """JPEG bytes of the image scaled to fit max_side (never enlarged)."""
    display = pil_image.convert("RGB")
    display.thumbnail((max_side, max_side), PilImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    display.save(buffer, "JPEG", quality=DISPLAY_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


# What display_name() gives, under the fields' upload_to ("display/", "display/2x/").
OPAQUE_DISPLAY_NAME = re.compile(r"^display/[0-9a-f]{32}\.jpg$")
OPAQUE_DISPLAY_2X_NAME = re.compile(r"^display/2x/[0-9a-f]{32}\.jpg$")


def display_name():
    """A new display file name that reveals nothing about the image (FileField adds "display/")."""
    return f"{secrets.token_hex(16)}.jpg"


def save_display_version(image, pil_image):
    """Store the display versions of `image` (an annotator Image) made from its decoded pixels: 1x, and 2x when
    the original is larger than the 1x version; the caller saves."""
    max_side = DISPLAY_MAX_SIDE[image.dataset.kind]
    image.display_file.save(display_name(), ContentFile(display_version_bytes(pil_image, max_side)), save=False)
    if max(pil_image.size) > max_side:
        image.display_file_2x.save(
            display_name(), ContentFile(display_version_bytes(pil_image, 2 * max_side)), save=False
        )


def make_display_version(image):
    """Read the original from storage and store its display versions, unless it already has them."""
    if image.display_file:
        return False
    with image.file.open("rb") as stored:
        pil_image = decode(stored.read())
    save_display_version(image, pil_image)
    image.save(update_fields=["display_file", "display_file_2x"])
    return True


def make_display_versions(dataset, progress=False):
    """Make the missing display versions of a dataset's images; returns how many were made."""
    missing = dataset.images.filter(display_file="").select_related("dataset").order_by("pk")
    made = 0
    for image in tqdm(missing.iterator(), total=missing.count(), desc="display versions", disable=not progress):
        made += make_display_version(image)
    logger.info("dataset %s: made %d display versions", dataset.name, made)
    return made
