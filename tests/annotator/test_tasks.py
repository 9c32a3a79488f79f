import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from PIL import Image as PilImage

from annotator import demo_data
from annotator.images import DISPLAY_MAX_SIDE
from annotator.models import Image
from annotator.tasks import make_display_versions

from .demo_sets import imagenet_demo_dir  # noqa: F401  (fixture)

REPO = Path(django_settings.BASE_DIR)


@pytest.mark.django_db
def test_make_display_versions_fills_in_only_the_missing_ones(imagenet_demo_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", defer_display=True, verbosity=0)
    assert Image.objects.filter(display_file="").count() == 120
    dataset_id = Image.objects.first().dataset_id

    assert make_display_versions.delay(dataset_id).get() == 120
    image = Image.objects.get(key="n90000002_1")
    with PilImage.open(image.display_file) as display:
        assert max(display.size) <= DISPLAY_MAX_SIDE
    assert make_display_versions.delay(dataset_id).get() == 0


def run_manage(env, *args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True, timeout=300)


def count_missing_display_versions(database):
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM annotator_image WHERE display_file = ''").fetchone()[0]


@pytest.mark.celery_worker
@pytest.mark.slow
def test_import_hands_display_versions_to_a_real_worker(tmp_path):
    """import_imagenet --defer-display queues the task on the real broker; a separate worker process does it.

    The processes share a SQLite file of their own (a worker cannot open the test run's in-memory database);
    the broker is CELERY_BROKER_URL when set (Redis in CI), else the filesystem transport under tmp_path.
    """
    data = tmp_path / "imagenet"
    demo_data.generate_imagenet(data, seed=1, per_class=1)
    database = tmp_path / "worker.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "VAR_DIR": str(tmp_path / "var"),
           "MEDIA_ROOT": str(tmp_path / "media"), "CELERY_TASK_ALWAYS_EAGER": "false", "PYTHONUNBUFFERED": "1"}
    run_manage(env, "migrate", "--noinput", "-v", "0")
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,gpu", "--pool", "solo",
         "--loglevel", "INFO", "--hostname", f"display-test-{os.getpid()}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        imported = run_manage(env, "import_imagenet", str(data), "--name", "shapes", "--defer-display")
        n_images = len(demo_data.CLASSES) * sum(demo_data.imagenet_counts(1).values())
        assert f"{n_images} images imported" in imported.stdout
        deadline = time.monotonic() + 120
        while count_missing_display_versions(database) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(1)
        assert count_missing_display_versions(database) == 0, (tmp_path / "worker.log").read_text()
        displays = list((tmp_path / "media" / "display").glob("*.jpg"))
        assert len(displays) == n_images
        assert "annotator.tasks.make_display_versions" in (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()


SEED_OVERDUE_WORK = """
from datetime import timedelta
from django.utils import timezone
from annotator.models import Assignment, Batch, Dataset, Hit, Worker
dataset = Dataset.objects.create(name="expiry", kind="imagenet")
batch = Batch.objects.create(name="expiry-r1", dataset=dataset, task_kind="imagenet", status="published")
hit = Hit.objects.create(batch=batch, index=0, status="published")
for name, deadline in (("LATE", timezone.now() - timedelta(minutes=1)), ("ON-TIME", timezone.now() + timedelta(hours=1))):
    Assignment.objects.create(hit=hit, worker=Worker.objects.create(provider="link", external_id=name),
                              deadline=deadline)
"""


def assignment_states(database):
    with sqlite3.connect(database) as connection:
        return dict(connection.execute(
            "SELECT w.external_id, a.state FROM annotator_assignment a JOIN annotator_worker w ON w.id = a.worker_id"
        ).fetchall())


@pytest.mark.celery_worker
@pytest.mark.slow
def test_beat_and_a_real_worker_expire_work_past_its_deadline(tmp_path):
    """Beat (a worker started with -B, as `make demo` runs it) queues expire_overdue_assignments every
    SWEEP_INTERVAL seconds on the real broker; the worker process expires the overdue assignment, not the other."""
    database = tmp_path / "worker.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "VAR_DIR": str(tmp_path / "var"),
           "MEDIA_ROOT": str(tmp_path / "media"), "CELERY_TASK_ALWAYS_EAGER": "false", "PYTHONUNBUFFERED": "1",
           "SWEEP_INTERVAL": "1"}
    run_manage(env, "migrate", "--noinput", "-v", "0")
    run_manage(env, "shell", "-c", SEED_OVERDUE_WORK)
    assert assignment_states(database) == {"LATE": "accepted", "ON-TIME": "accepted"}
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q", "default", "--pool", "solo",
         "--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "INFO",
         "--hostname", f"expiry-test-{os.getpid()}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while assignment_states(database)["LATE"] != "expired" and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(1)
        assert assignment_states(database) == {"LATE": "expired", "ON-TIME": "accepted"}, (
            (tmp_path / "worker.log").read_text())
        assert "annotator.tasks.expire_overdue_assignments" in (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
