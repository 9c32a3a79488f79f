import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from annotator.models import Assignment, Category, Event, Image, Worker, hash_worker_id
from tests import factories

pytestmark = pytest.mark.django_db
State = Assignment.State


def assert_rejected_by_database(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_category_key_and_index_are_unique_within_a_dataset():
    category = factories.CategoryFactory(key="n01440764", index=0)
    assert_rejected_by_database(lambda: factories.CategoryFactory(dataset=category.dataset, key="n01440764", index=1))
    assert_rejected_by_database(lambda: factories.CategoryFactory(dataset=category.dataset, key="n01443537", index=0))
    factories.CategoryFactory(key="n01440764", index=0)  # another dataset may reuse both


def test_image_key_is_unique_within_a_dataset():
    image = factories.ImageFactory(key="n01440764_105")
    assert_rejected_by_database(lambda: factories.ImageFactory(dataset=image.dataset, key="n01440764_105"))


def test_coco_annotation_id_is_unique_per_image_but_boxes_without_one_may_repeat():
    obj = factories.GroundTruthObjectFactory(source_id=42)
    factories.GroundTruthObjectFactory(image=obj.image, category=obj.category)
    factories.GroundTruthObjectFactory(image=obj.image, category=obj.category)
    assert_rejected_by_database(
        lambda: factories.GroundTruthObjectFactory(image=obj.image, category=obj.category, source_id=42))


def test_byproduct_records_are_written_once_per_assignment_page_and_image():
    record = factories.ImageNetRecordFactory()
    assert_rejected_by_database(lambda: factories.ImageNetRecordFactory(
        assignment=record.assignment, page=record.page, image=record.image))
    factories.ImageNetRecordFactory(assignment=record.assignment, page=record.page)  # another image is fine
    coco = factories.CocoRecordFactory()
    assert_rejected_by_database(lambda: factories.CocoRecordFactory(assignment=coco.assignment, page=coco.page))


def test_a_worker_takes_a_hit_once_and_is_known_by_a_salted_hash(settings):
    assignment = factories.AssignmentFactory()
    assert_rejected_by_database(lambda: factories.AssignmentFactory(hit=assignment.hit, worker=assignment.worker))
    worker = assignment.worker
    assert worker.hashed_id == hash_worker_id(worker.provider, worker.external_id)
    assert worker.external_id not in worker.hashed_id and len(worker.hashed_id) == 64
    settings.WORKER_ID_SALT = "another salt"
    assert hash_worker_id(worker.provider, worker.external_id) != worker.hashed_id
    assert_rejected_by_database(lambda: Worker.objects.create(provider=worker.provider,
                                                              external_id=worker.external_id))


@pytest.mark.parametrize("path", [
    [State.IN_PROGRESS, State.SUBMITTED, State.APPROVED],
    [State.SUBMITTED, State.REJECTED, State.APPROVED],  # an admin overrides the rules
    [State.IN_PROGRESS, State.RETURNED],
    [State.EXPIRED],
])
def test_assignment_follows_its_state_machine(path):
    assignment = factories.AssignmentFactory()
    assert assignment.state == State.ACCEPTED
    for state in path:
        assignment.transition(state)
        assignment.save()
    assignment.refresh_from_db()
    assert assignment.state == path[-1]


@pytest.mark.parametrize("start, illegal", [
    (State.ACCEPTED, State.APPROVED),  # review needs a submission
    (State.SUBMITTED, State.IN_PROGRESS),
    (State.RETURNED, State.SUBMITTED),  # returned and expired are final
    (State.EXPIRED, State.IN_PROGRESS),
])
def test_assignment_refuses_illegal_transitions_and_says_which(start, illegal):
    assignment = factories.AssignmentFactory(state=start)
    with pytest.raises(ValidationError) as error:
        assignment.transition(illegal)
    assert f"cannot go from {start} to {illegal}" in str(error.value)
    assert assignment.state == start


def test_events_are_append_only():
    assignment = factories.AssignmentFactory()
    event = Event.objects.create(type=Event.Type.ACCEPTED, assignment=assignment, data={"ip": "hashed"})
    event.data = {"ip": "rewritten"}
    with pytest.raises(ValidationError, match="append-only"):
        event.save()
    with pytest.raises(ValidationError, match="append-only"):
        event.delete()
    assert Event.objects.get().data == {"ip": "hashed"}


def test_a_batch_must_match_its_dataset_kind():
    batch = factories.BatchFactory(dataset=factories.DatasetFactory(kind="coco"), task_kind="imagenet")
    with pytest.raises(ValidationError, match="task_kind"):
        batch.full_clean()


def test_deleting_a_dataset_takes_its_classes_and_images_but_a_used_class_alone_stays():
    category = factories.CategoryFactory()
    image = factories.ImageFactory(dataset=category.dataset, label=category)
    factories.GroundTruthObjectFactory(image=image, category=category)
    with pytest.raises(RestrictedError), transaction.atomic():
        category.delete()
    category.dataset.delete()
    assert not Image.objects.exists() and not Category.objects.exists()


@pytest.mark.parametrize("duration, ok", [(900, True), (60, True), (59, False), ("3600", False), (True, False),
                                          (None, False), (1.5, False)])
def test_the_assignment_duration_is_whole_seconds_of_at_least_a_minute(duration, ok):
    from datetime import timedelta

    batch = factories.BatchFactory.build(dataset=factories.DatasetFactory(), task_kind="imagenet",
                                         provider_config={"assignment_duration": duration})
    if ok:
        batch.clean()
        assert batch.assignment_duration == timedelta(seconds=duration)
    else:
        with pytest.raises(ValidationError, match="assignment_duration: .* is not a whole number of seconds"):
            batch.clean()


def test_each_hit_has_its_own_candidate_key():
    first, second = factories.HitFactory(), factories.HitFactory()
    assert first.candidate_key != second.candidate_key and len(first.candidate_key) == 32
