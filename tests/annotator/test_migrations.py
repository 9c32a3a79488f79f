"""Data migrations of issue 14: existing HITs get candidate keys, open work a deadline, display files new names."""
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.migrating import migrate, state_before

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("annotator", "0006_event_request_types")
AFTER = ("annotator", "0009_display_file_names")


old_state = state_before(BEFORE)


def test_existing_rows_are_migrated(old_state):
    Dataset = old_state.get_model("annotator", "Dataset")
    Image = old_state.get_model("annotator", "Image")
    Batch = old_state.get_model("annotator", "Batch")
    Hit = old_state.get_model("annotator", "Hit")
    Worker = old_state.get_model("annotator", "Worker")
    Assignment = old_state.get_model("annotator", "Assignment")
    dataset = Dataset.objects.create(name="old", kind="imagenet")
    old_name = default_storage.save("display/old/n01440764_105.jpg", ContentFile(b"jpeg bytes"))
    Image.objects.create(dataset=dataset, key="n01440764_105", file="images/old/n01440764_105.JPEG",
                         display_file=old_name, width=5, height=5)
    Image.objects.create(dataset=dataset, key="n01440764_7", file="images/old/n01440764_7.JPEG",
                         display_file="display/old/n01440764_7.jpg", width=5, height=5)  # its file is gone
    batch = Batch.objects.create(name="old-r1", dataset=dataset, task_kind="imagenet",
                                 provider_config={"assignment_duration": 600})
    hits = [Hit.objects.create(batch=batch, index=i) for i in range(2)]
    open_work = Assignment.objects.create(hit=hits[0], worker=Worker.objects.create(provider="link", external_id="W1"))
    done = Assignment.objects.create(hit=hits[1], state="approved",
                                     worker=Worker.objects.create(provider="link", external_id="W2"))

    new = migrate(AFTER)
    Hit, Image, Assignment = (new.get_model("annotator", name) for name in ("Hit", "Image", "Assignment"))
    keys = list(Hit.objects.values_list("candidate_key", flat=True))
    assert len(set(keys)) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
    renamed = Image.objects.get(key="n01440764_105").display_file.name
    assert re.fullmatch(r"display/[0-9a-f]{32}\.jpg", renamed)
    assert default_storage.open(renamed).read() == b"jpeg bytes"
    assert not default_storage.exists(old_name), "the old name (guessable from the key) must not stay public"
    assert Image.objects.get(key="n01440764_7").display_file.name == ""
    opened = Assignment.objects.get(pk=open_work.pk)
    assert abs(opened.deadline - (opened.accepted_at + timedelta(seconds=600))) < timedelta(seconds=1)
    assert opened.deadline < timezone.now() + timedelta(seconds=601)
    assert Assignment.objects.get(pk=done.pk).deadline is None
