"""Training jobs: claimed once per delivery, resumed or failed when their worker dies, never stuck "running".

The tests marked celery_worker run on a real `celery worker -Q default,gpu --concurrency 1` process on the configured
broker (tests/workers.py) against the test database; tests/config/test_celery.py runs a job from the API there.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from django.utils import timezone

from tests import factories
from tests.training.job_data import TINY_CONFIG, registered_version, tiny_imagenet_dataset
from training.services import jobs, recovery, training_jobs
from tests.workers import PublishTo, WorkerProcess, wait_for
from training.models import InferenceJob, JobStatus, ModelVersion, TrainingJob

BASE_DIR = Path(__file__).resolve().parents[2]


# --- claiming and recovering, without a worker ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_delivery_claims_a_queued_job_and_a_duplicate_delivery_is_skipped():
    job = TrainingJob.objects.create(dataset=factories.DatasetFactory(), celery_task_id="first")
    claimed = jobs.claim(TrainingJob, job.pk, task_id="first", hostname="gpu-1")
    assert claimed.status == JobStatus.RUNNING and claimed.attempts == 1 and claimed.worker_hostname == "gpu-1"
    # Another message for the same job while it runs with a fresh heartbeat: not run twice.
    assert jobs.claim(TrainingJob, job.pk, task_id="second", hostname="gpu-2") is None
    # The same message redelivered (its worker process died and the broker gave it back): resumed.
    resumed = jobs.claim(TrainingJob, job.pk, task_id="first", hostname="gpu-1")
    assert resumed.attempts == 2


@pytest.mark.django_db
def test_a_job_whose_worker_keeps_dying_fails_with_the_reason(settings):
    settings.TRAINING_MAX_ATTEMPTS = 2
    job = TrainingJob.objects.create(
        dataset=factories.DatasetFactory(), status=JobStatus.RUNNING, attempts=2, celery_task_id="t",
        worker_hostname="gpu-1",
    )
    assert jobs.claim(TrainingJob, job.pk, task_id="t", hostname="gpu-1") is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "lost 2 times" in job.error and "gpu-1" in job.error


@pytest.mark.django_db
def test_an_inference_job_has_the_same_lifecycle():
    """Claimed once per delivery, beating, and superseded by a requeue: a superseded run writes nothing more."""
    job = InferenceJob.objects.create(model_version=registered_version(factories.DatasetFactory()),
                                      celery_task_id="first")
    claimed = jobs.claim(InferenceJob, job.pk, task_id="first", hostname="gpu-1")
    assert claimed.attempts == 1 and claimed.worker_hostname == "gpu-1" and claimed.heartbeat_at is not None
    assert jobs.claim(InferenceJob, job.pk, task_id="second", hostname="gpu-2") is None

    heartbeat = jobs.Heartbeat(claimed)
    InferenceJob.objects.filter(pk=job.pk).update(celery_task_id="second")  # the sweeper requeued it
    heartbeat._beat_once()
    assert heartbeat.superseded and heartbeat.should_stop()
    assert not heartbeat.write(progress={"images_done": 32})
    assert not jobs.fail(claimed, "first", RuntimeError("too late")), "it must not end its successor's job"


@pytest.mark.django_db
def test_recover_stale_jobs_requeues_lost_jobs_and_leaves_live_ones(settings, django_capture_on_commit_callbacks,
                                                                    monkeypatch):
    from training import tasks

    sent = []
    monkeypatch.setattr(tasks.run_training_job, "apply_async", lambda **kwargs: sent.append(kwargs))
    settings.TRAINING_HEARTBEAT_TIMEOUT = 60
    now = timezone.now()
    dataset = factories.DatasetFactory()

    def running(hostname, heartbeat_age, attempts=1):
        return TrainingJob.objects.create(
            dataset=dataset, status=JobStatus.RUNNING, worker_hostname=hostname, attempts=attempts,
            heartbeat_at=now - timedelta(seconds=heartbeat_age), celery_task_id=str(uuid.uuid4()),
        )

    silent = running("gpu-2", heartbeat_age=600)
    restarted_here = running("gpu-1", heartbeat_age=5)  # its worker gpu-1 has just started again
    alive_elsewhere = running("gpu-3", heartbeat_age=5)
    hopeless = running("gpu-2", heartbeat_age=600, attempts=settings.TRAINING_MAX_ATTEMPTS)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = recovery.recover_stale_jobs(TrainingJob, hostname="gpu-1", started_at=now - timedelta(seconds=1))

    assert sorted(outcome["requeued"]) == sorted([silent.pk, restarted_here.pk])
    assert outcome["failed"] == [hopeless.pk]
    for job in (silent, restarted_here, alive_elsewhere, hopeless):
        job.refresh_from_db()
    assert silent.status == restarted_here.status == JobStatus.QUEUED
    assert alive_elsewhere.status == JobStatus.RUNNING
    assert hopeless.status == JobStatus.FAILED and "was lost" in hopeless.error
    assert sorted(call["args"][0] for call in sent) == sorted([silent.pk, restarted_here.pk])
    assert {call["task_id"] for call in sent} == {silent.celery_task_id, restarted_here.celery_task_id}


@pytest.mark.django_db
def test_a_job_without_training_data_fails_with_the_reason(django_capture_on_commit_callbacks, settings, tmp_path):
    settings.TRAINING_WORK_DIR = tmp_path / "work"
    dataset = factories.DatasetFactory()
    factories.CategoryFactory(dataset=dataset, index=0)
    with django_capture_on_commit_callbacks(execute=True):
        job = training_jobs.create_training_job(dataset=dataset, source=TrainingJob.Source.API)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "has no train images" in job.error
    assert job.finished_at is not None


def test_recover_command_reports_what_it_did(db, capsys):
    from django.core.management import call_command

    call_command("recover_training_jobs")
    assert "0 requeued, 0 failed" in capsys.readouterr().out


# --- a real worker process ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, tmp_path_factory):
    """One worker on the configured broker for the module's tests (started by `celery_worker`): start-up paid once."""
    process = WorkerProcess(tmp_path_factory.mktemp("worker"))
    yield process
    process.stop()


def watch(job, until, timeout, worker):
    """Poll the job row until until(job); returns every (status, progress) seen on the way."""
    seen = []

    def reached():
        job.refresh_from_db()
        seen.append((job.status, dict(job.progress)))
        return until(job)

    wait_for(reached, timeout, lambda: f"job {job.pk} ({job.status}, {job.progress}, {job.error})\n{worker.log_tail()}")
    return seen


def finished(job):
    return job.is_finished


def long_job():
    """A queued job of 500 epochs on a tiny dataset: it runs until it is stopped."""
    dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=0)
    return training_jobs.create_training_job(dataset=dataset, config={**TINY_CONFIG, "epochs": 500},
                                             source=TrainingJob.Source.API)


@pytest.mark.celery_worker
@pytest.mark.slow
def test_cancel_stops_a_running_job(celery_worker):
    worker = celery_worker
    job = long_job()
    watch(job, lambda j: j.status == JobStatus.RUNNING and j.progress.get("step"), 180, worker)

    jobs.cancel(job)
    watch(job, finished, 60, worker)

    assert job.status == JobStatus.CANCELLED
    assert job.progress["epoch"] < 500
    assert not ModelVersion.objects.filter(job=job).exists()


@pytest.mark.celery_worker
@pytest.mark.slow
def test_a_killed_worker_process_leads_to_a_resumed_job(celery_worker):
    worker = celery_worker
    job = long_job()
    checkpoint = worker.work_dir / str(job.pk) / "checkpoint.pt"  # written atomically after each epoch
    watch(job, lambda j: j.status == JobStatus.RUNNING and checkpoint.exists(), 180, worker)

    # The pool process running the job dies (as under the OOM killer): Celery gives the message back.
    (pool_pid,) = worker.pool_pids()
    os.kill(pool_pid, signal.SIGKILL)
    watch(job, lambda j: j.attempts == 2 and "resuming" in j.log_tail, 120, worker)
    resumed_at = re.search(r"resuming \S+ at epoch (\d+)", job.log_tail)
    assert job.status == JobStatus.RUNNING and int(resumed_at.group(1)) >= 1  # not from scratch

    # The whole worker dies (host lost, SIGKILL): when it starts again, it picks the job up again.
    worker.kill_everything()
    worker.start()
    watch(job, lambda j: j.attempts == 3 and j.status == JobStatus.RUNNING, 120, worker)

    jobs.cancel(job)
    watch(job, finished, 60, worker)
    assert job.status == JobStatus.CANCELLED


class SlowSnapshotWorker(WorkerProcess):
    """A worker whose data snapshots take SNAPSHOT_CHUNK_DELAY_S per row (tests/training/slow_snapshot_worker.py)."""

    def command(self):
        command = super().command()
        command[command.index("celery")] = "tests.training.slow_snapshot_worker"
        return command


@pytest.mark.celery_worker
@pytest.mark.slow
def test_a_snapshot_longer_than_the_heartbeat_timeout_keeps_its_job(transactional_db, settings, tmp_path,
                                                                    celery_worker_process):
    celery_worker_process.stop()  # only the slow worker may take the job
    settings.TRAINING_HEARTBEAT_TIMEOUT = 2  # the sweeper, run below as beat would, counts 2 s of silence as lost
    worker = SlowSnapshotWorker(tmp_path, extra_env={"SNAPSHOT_CHUNK_DELAY_S": "0.5",
                                                     "TRAINING_HEARTBEAT_TIMEOUT": "2"})
    settings.MEDIA_ROOT, settings.TRAINING_WORK_DIR = worker.media_root, worker.work_dir
    worker.start()
    try:
        with PublishTo(worker):
            dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=1)  # 9 images: 18 rows to read
            job = training_jobs.create_training_job(dataset=dataset, config=TINY_CONFIG, source=TrainingJob.Source.API)
            messages, sweeps = [], []
            snapshot_seen_at = None

            def swept_until_finished():
                nonlocal snapshot_seen_at
                sweeps.append(recovery.sweep_jobs())
                job.refresh_from_db()
                if job.progress.get("stage") == "snapshot":
                    snapshot_seen_at = timezone.now()
                    messages.append(job.progress["message"])
                return job.is_finished

            wait_for(swept_until_finished, 240, lambda: f"job {job.pk} ({job.status}, {job.progress}, "
                                                        f"{job.error})\n{worker.log_tail()}", interval=0.3)
            worker.wait_until_idle()
    finally:
        worker.stop()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 1 and not any(sweep["requeued"] or sweep["failed"] for sweep in sweeps), sweeps
    # Still building its snapshot well past the heartbeat timeout, and never taken for lost.
    assert snapshot_seen_at - job.started_at > timedelta(seconds=2 * settings.TRAINING_HEARTBEAT_TIMEOUT)
    assert any(re.fullmatch(r"building the data snapshot: \d of 9 images, ETA \d+ s", m) for m in messages)
    assert any(re.fullmatch(r"building the data snapshot: \d of 6 byproduct records, ETA \d+ s", m)
               for m in messages)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.mark.celery_worker
@pytest.mark.slow
def test_a_job_keeps_its_images_and_artifacts_in_s3(transactional_db, settings, s3_server, tmp_path,
                                                     celery_worker_process):
    celery_worker_process.stop()  # only the worker with the S3 settings may take the job
    s3_env = {
        "AWS_STORAGE_BUCKET_NAME": "luab-test", "AWS_S3_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_REGION_NAME": "us-east-1",
    }
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="luab-test")
    for name, value in s3_env.items():
        setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage"}}
    s3_worker = WorkerProcess(tmp_path, extra_env=s3_env)
    s3_worker.start()
    try:
        with PublishTo(s3_worker):
            dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=1)
            job = training_jobs.create_training_job(dataset=dataset, config={**TINY_CONFIG, "epochs": 1},
                                                     source=TrainingJob.Source.API)
            watch(job, finished, 300, s3_worker)
    finally:
        s3_worker.stop()

    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{s3_worker.log_tail()}"
    objects = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing").list_objects_v2(Bucket="luab-test")["Contents"]
    keys = {entry["Key"] for entry in objects}
    assert ModelVersion.objects.get(job=job).checkpoint.name in keys
    assert set(job.artifacts.values()) <= keys


@pytest.mark.django_db
def test_train_command_with_async_queues_a_job_instead_of_training(django_capture_on_commit_callbacks, capsys):
    from django.core.management import CommandError, call_command

    dataset = factories.DatasetFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("train", "--dataset", dataset.name, "--async", "--model", "test_resnet", "--epochs", "3",
                     "--option", "point_loss=mse")
    job = TrainingJob.objects.get()
    assert job.source == TrainingJob.Source.COMMAND and job.status == JobStatus.QUEUED and len(callbacks) == 1
    assert job.config["model"] == "test_resnet" and job.config["epochs"] == 3 and job.config["point_loss"] == "mse"
    assert f"training job {job.pk} queued" in capsys.readouterr().out

    with pytest.raises(CommandError, match="config.colour: unknown option"):
        call_command("train", "--dataset", dataset.name, "--async", "--option", "colour=red")
    assert TrainingJob.objects.count() == 1


def test_the_worker_parent_never_imports_torch():
    """What a Celery worker's parent process loads (settings, the apps, every task module, the start-up receivers)
    leaves torch, and so CUDA, to the pool processes that run the jobs."""
    script = (
        "import sys, django; django.setup(); "
        "from config.celery import app; app.loader.import_default_modules(); "
        "import training.tasks, training.receivers; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
