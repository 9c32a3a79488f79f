import pytest
from django.core.management import call_command
from PIL import Image as PilImage

from annotator.images import DISPLAY_MAX_SIDE
from annotator.models import Image
from annotator.tasks import make_display_versions

from .demo_sets import imagenet_demo_dir  # noqa: F401  (fixture)


@pytest.mark.django_db
def test_make_display_versions_fills_in_only_the_missing_ones(imagenet_demo_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", defer_display=True, verbosity=0)
    assert Image.objects.filter(display_file="").count() == 120
    dataset_id = Image.objects.first().dataset_id

    assert make_display_versions.delay(dataset_id).get() == 120
    image = Image.objects.get(key="n90000002_1")
    with PilImage.open(image.display_file) as display:
        assert max(display.size) <= DISPLAY_MAX_SIDE["imagenet"]
    assert not image.display_file_2x  # the 192 px original is smaller than a 2x copy would be
    assert make_display_versions.delay(dataset_id).get() == 0
