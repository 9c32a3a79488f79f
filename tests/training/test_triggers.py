"""Automatic training: a batch with train_every_n_approved schedules one job per N newly approved assignments."""
import pytest
from django.db import transaction

from annotator.models import Assignment
from annotator.review import services as review
from tests import factories
from training.models import BatchTrainingTrigger, JobStatus, TrainingJob

pytestmark = pytest.mark.django_db


def submitted_assignments(batch, count):
    hit = factories.HitFactory(batch=batch)
    return [factories.AssignmentFactory(hit=hit, state=Assignment.State.SUBMITTED) for _ in range(count)]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("admin", is_staff=True)


def test_trigger_fires_once_per_threshold(staff):
    batch = factories.BatchFactory(train_every_n_approved=3)
    assignments = submitted_assignments(batch, 7)

    jobs_after_each_approval = []
    for number, assignment in enumerate(assignments, start=1):
        review.decide(assignment, approve=True, actor=staff)
        jobs_after_each_approval.append(TrainingJob.objects.count())
        if number == 3:  # the first job starts: it takes its data snapshot
            TrainingJob.objects.update(status=JobStatus.RUNNING, manifest_hash="a" * 64)

    # Jobs appear at the 3rd and 6th approval only, each queued for the whole dataset by the trigger.
    assert jobs_after_each_approval == [0, 0, 1, 1, 1, 2, 2]
    jobs = list(TrainingJob.objects.order_by("pk"))
    assert all(job.source == TrainingJob.Source.TRIGGER and job.triggered_by_batch == batch for job in jobs)
    assert jobs[1].status == JobStatus.QUEUED
    assert BatchTrainingTrigger.objects.get(batch=batch).approved_count_at_last_trigger == 6


def test_approving_many_in_one_transaction_schedules_one_job_for_the_one_snapshot(staff):
    batch = factories.BatchFactory(train_every_n_approved=3)
    assignments = submitted_assignments(batch, 7)
    with transaction.atomic():
        for assignment in assignments:
            review.decide(assignment, approve=True, actor=staff)
    assert TrainingJob.objects.count() == 1
    assert BatchTrainingTrigger.objects.get(batch=batch).approved_count_at_last_trigger == 6


def test_trigger_does_not_fire_twice_for_the_same_count(django_capture_on_commit_callbacks, staff):
    batch = factories.BatchFactory(train_every_n_approved=2)
    first, second, third = submitted_assignments(batch, 3)
    review.decide(first, approve=True, actor=staff)
    review.decide(second, approve=True, actor=staff)
    assert TrainingJob.objects.count() == 1

    # An override takes one approval back and a new approval restores the count: same snapshot size, no new job.
    review.decide(second, approve=False, actor=staff, feedback="clicks outside the objects")
    review.decide(third, approve=True, actor=staff)
    assert TrainingJob.objects.count() == 1


def test_trigger_queues_the_task_only_when_the_decision_commits(django_capture_on_commit_callbacks, staff,
                                                                 monkeypatch):
    from training import tasks

    sent = []
    monkeypatch.setattr(tasks.run_training_job, "apply_async", lambda **kwargs: sent.append(kwargs))
    batch = factories.BatchFactory(train_every_n_approved=1)
    (assignment,) = submitted_assignments(batch, 1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        review.decide(assignment, approve=True, actor=staff)
    job = TrainingJob.objects.get()
    assert job.status == JobStatus.QUEUED and sent == []
    for callback in callbacks:
        callback()
    assert sent == [{"args": [job.pk], "task_id": job.celery_task_id}]


def test_no_trigger_without_setting_or_with_training_disabled(settings, staff):
    plain = factories.BatchFactory()
    review.decide(submitted_assignments(plain, 1)[0], approve=True, actor=staff)
    settings.TRAINING_ENABLED = False
    disabled = factories.BatchFactory(train_every_n_approved=1)
    review.decide(submitted_assignments(disabled, 1)[0], approve=True, actor=staff)
    assert not TrainingJob.objects.exists()


def test_triggered_job_reuses_the_active_models_config(staff):
    from tests.training.job_data import registered_version
    from training.services import registry

    batch = factories.BatchFactory(train_every_n_approved=1)
    version = registered_version(batch.dataset, config={"model": "test_resnet", "epochs": 3, "manifest_hash": "x"})
    registry.promote_model_version(version)
    review.decide(submitted_assignments(batch, 1)[0], approve=True, actor=staff)
    assert TrainingJob.objects.get(source=TrainingJob.Source.TRIGGER).config == {"model": "test_resnet", "epochs": 3}


def test_a_bulk_decision_evaluates_each_batch_once(staff, monkeypatch):
    """One signal for the decided chunk: the trigger locks and counts each batch once, not once per assignment."""
    from training.services import triggers

    batches = [factories.BatchFactory(train_every_n_approved=100) for _ in range(2)]
    assignments = submitted_assignments(batches[0], 30) + submitted_assignments(batches[1], 10)
    evaluated = []
    evaluate = triggers.schedule_training_if_due
    monkeypatch.setattr(triggers, "schedule_training_if_due", lambda batch: evaluated.append(batch.pk) or evaluate(
        batch))
    review.bulk_decide([assignment.pk for assignment in assignments], approve=True, actor=staff)
    assert evaluated == [batch.pk for batch in batches]
