"""The training sweeper (services/recovery.py: beat, or `manage.py recover_training_jobs`): jobs a broker outage
left unsent are sent, jobs whose worker vanished are resumed or failed with the reason, inference jobs too."""
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from config.celery import app as celery_app
from tests import factories
from tests.broker import broker  # noqa: F401  (fixture)
from tests.training.job_data import registered_version
from training import tasks
from training.services import jobs, recovery, training_jobs
from training.models import InferenceJob, JobStatus, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Messages of the training and inference tasks, by task name (no job runs)."""
    messages = {"training": [], "inference": []}
    monkeypatch.setattr(tasks.run_training_job, "apply_async", lambda **kwargs: messages["training"].append(kwargs))
    monkeypatch.setattr(tasks.run_inference_job, "apply_async", lambda **kwargs: messages["inference"].append(kwargs))
    return messages


def test_a_job_created_with_the_broker_down_stays_queued_and_the_sweeper_sends_it(
        broker, django_capture_on_commit_callbacks, monkeypatch):
    broker.down()
    with django_capture_on_commit_callbacks(execute=True):
        job = training_jobs.create_training_job(dataset=factories.DatasetFactory(), source=TrainingJob.Source.API)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.error == jobs.NOT_QUEUED, "not failed: it waits for the broker"
    first_task_id = job.celery_task_id

    # Still down: the sweep leaves it queued and marked.
    assert recovery.sweep_jobs()["resent"] == []
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.error == jobs.NOT_QUEUED

    broker.up()
    messages = []
    monkeypatch.setattr(tasks.run_training_job, "apply_async", lambda **kwargs: messages.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        outcome = tasks.sweep_jobs.apply().get()
    job.refresh_from_db()
    assert outcome["resent"] == [job.pk] and job.error == ""
    assert job.celery_task_id != first_task_id, "a new task id: a message that did arrive after all is skipped"
    assert messages == [{"args": [job.pk], "task_id": job.celery_task_id}]
    assert recovery.sweep_jobs()["resent"] == []


def test_a_training_job_whose_worker_vanished_is_resumed_by_the_sweeper(
        settings, sent, django_capture_on_commit_callbacks, capsys):
    settings.TRAINING_HEARTBEAT_TIMEOUT = 60
    job = TrainingJob.objects.create(dataset=factories.DatasetFactory(), celery_task_id="first")
    jobs.claim(TrainingJob, job.pk, task_id="first", hostname="gpu-1")
    # The worker is killed (-9) mid-epoch: its heartbeat stops and nobody gives the message back.
    TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))

    with django_capture_on_commit_callbacks(execute=True):
        call_command("recover_training_jobs")
    assert "1 requeued, 0 failed" in capsys.readouterr().out
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.celery_task_id != "first"
    assert sent["training"] == [{"args": [job.pk], "task_id": job.celery_task_id}]

    # The new message is claimed as the job's second attempt (run_training_job resumes from the last checkpoint).
    resumed = jobs.claim(TrainingJob, job.pk, task_id=job.celery_task_id, hostname="gpu-2")
    assert resumed.status == JobStatus.RUNNING and resumed.attempts == 2
    # The dead worker's message, should the broker ever give it back, is skipped.
    assert jobs.claim(TrainingJob, job.pk, task_id="first", hostname="gpu-1") is None


def running_inference_job(heartbeat_age, requeued=0, worker="gpu-1"):
    version = registered_version(factories.DatasetFactory())
    beat = timezone.now() - timedelta(seconds=heartbeat_age)
    return InferenceJob.objects.create(
        model_version=version, status=JobStatus.RUNNING, celery_task_id=str(uuid.uuid4()), started_at=beat,
        progress={"images_done": 64, "images_total": 640}, heartbeat_at=beat, attempts=requeued + 1,
        worker_hostname=worker,
    )


def test_an_inference_job_whose_worker_vanished_is_requeued_and_a_live_one_is_left(
        settings, sent, django_capture_on_commit_callbacks):
    settings.TRAINING_HEARTBEAT_TIMEOUT = 60
    lost, alive = running_inference_job(heartbeat_age=600), running_inference_job(heartbeat_age=5)
    alive_task_id = alive.celery_task_id

    with django_capture_on_commit_callbacks(execute=True):
        outcome = recovery.sweep_jobs()

    assert outcome["inference_requeued"] == [lost.pk] and outcome["inference_failed"] == []
    lost.refresh_from_db()
    alive.refresh_from_db()
    assert lost.status == JobStatus.QUEUED and lost.attempts == 1, "its next claim is its second run"
    assert sent["inference"] == [{"args": [lost.pk], "task_id": lost.celery_task_id}]
    assert alive.status == JobStatus.RUNNING and alive.celery_task_id == alive_task_id


def test_an_inference_job_restarted_by_its_own_worker_is_requeued_at_once(sent, django_capture_on_commit_callbacks):
    job = running_inference_job(heartbeat_age=5, worker="gpu-1")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = recovery.recover_stale_jobs(InferenceJob, hostname="gpu-1", started_at=timezone.now())
    assert outcome["requeued"] == [job.pk]


def test_an_inference_job_that_keeps_losing_its_worker_fails_with_the_reason(settings, sent):
    settings.TRAINING_HEARTBEAT_TIMEOUT = 60
    job = running_inference_job(heartbeat_age=600, requeued=settings.TRAINING_MAX_ATTEMPTS - 1)
    assert recovery.sweep_jobs()["inference_failed"] == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and f"gpu-1 was lost {settings.TRAINING_MAX_ATTEMPTS} times" in job.error
    assert sent["inference"] == []


def test_the_sweepers_run_on_beat_and_the_training_one_on_the_default_queue():
    schedule = celery_app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} == {
        "annotator.tasks.sweep_work", "annotator.tasks.expire_overdue_assignments", "training.tasks.sweep_jobs",
        "annotator.providers.tasks.sync_market_batches",
    }
    assert schedule["sync-prolific-batches"]["args"] == ("prolific",)
    router = celery_app.amqp.router
    assert router.route({}, "training.tasks.sweep_jobs")["queue"].name == "default"
    assert router.route({}, "training.tasks.run_training_job")["queue"].name == "gpu"


def test_a_run_the_sweeper_superseded_stops_and_leaves_the_job_to_its_successor(tmp_path):
    """A worker too slow to beat (not dead) is requeued as lost; once the job names the new delivery, the old run
    stops at its next step and writes nothing more to the job."""
    job = TrainingJob.objects.create(dataset=factories.DatasetFactory(), celery_task_id="first")
    job = jobs.claim(TrainingJob, job.pk, task_id="first", hostname="gpu-1")
    monitor = training_jobs.JobMonitor(job, tmp_path / "metrics.jsonl", training_jobs.LogTail())
    monitor._beat_once()
    assert not monitor.should_stop()

    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, celery_task_id="second",
                                                 heartbeat_at=None, progress={"epoch": 3})
    monitor._beat_once()
    monitor.on_progress({"epoch": 1, "step": 4, "steps": 4})

    assert monitor.superseded and monitor.should_stop()
    job.refresh_from_db()
    assert job.heartbeat_at is None and job.progress == {"epoch": 3}, "the old run wrote to its successor's job"


def test_a_queued_job_whose_message_the_broker_lost_is_sent_again(settings, monkeypatch):
    """Redis restarted without persistence loses the queued messages: once the gpu queue holds fewer messages than
    there are queued jobs, the jobs queued for longer than SWEEP_AFTER are sent again; while it holds one for each,
    nothing is."""
    if not celery_app.conf.broker_url.startswith("redis"):
        pytest.skip("reads the queue of a Redis broker (CELERY_BROKER_URL=redis://...)")
    monkeypatch.setattr(celery_app.conf, "CELERY_TASK_ALWAYS_EAGER", False)
    dataset = factories.DatasetFactory()
    waiting, fresh = (TrainingJob.objects.create(dataset=dataset, celery_task_id=str(uuid.uuid4())) for _ in range(2))
    TrainingJob.objects.filter(pk=waiting.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.SWEEP_AFTER + 60))
    queue = celery_app.amqp.router.route({}, tasks.run_training_job.name)["queue"]
    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        queue(channel).purge()
        try:
            for job in (waiting, fresh):  # no worker takes them
                tasks.run_training_job.apply_async(args=[job.pk], task_id=job.celery_task_id)
            assert recovery.resend_unsent_jobs() == {"training": [], "inference": []}

            queue(channel).purge()  # the broker restarts empty
            assert recovery.resend_unsent_jobs() == {"training": [waiting.pk], "inference": []}, "fresh: not yet"
            waiting.refresh_from_db()
            message = queue(channel).get(no_ack=True)
            assert message.headers["id"] == waiting.celery_task_id
        finally:
            queue(channel).purge()
