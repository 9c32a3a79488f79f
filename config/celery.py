"""The Celery application: broker from CELERY_BROKER_URL, else kombu's filesystem transport under var/.

Every tasks.py of our apps' packages is imported by a worker (task_packages; check annotator.E001 verifies it in a
fresh process). Also send_task/send_on_commit, the way request handlers queue work (a broker outage never fails a
request), and the beat schedule of the sweepers that queue again whatever an outage or a dead worker left undone.
"""
import logging
import os
import time
from functools import partial
from pathlib import Path

from celery import Celery
from kombu.exceptions import OperationalError

from . import filesystem_broker  # noqa: F401  ("filesystem://" is kombu's transport with atomic message files)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("luab")
app.config_from_object("django.conf:settings", namespace="CELERY")


def task_packages():
    """Every package of our own apps that holds a tasks.py (annotator.exports, annotator.review, ...): Celery's own
    autodiscovery looks only at `<app>.tasks`, and a worker that does not import a task module refuses its messages
    ("Received unregistered task"). Read when the worker imports its modules (Django is set up by then)."""
    from django.apps import apps
    from django.conf import settings

    base = Path(settings.BASE_DIR).resolve()
    packages = []
    for config in apps.get_app_configs():
        root = Path(config.path).resolve()
        if base in root.parents:
            packages += [".".join(tasks.parent.relative_to(root.parent).parts)
                         for tasks in sorted(root.rglob("tasks.py"))]
    return packages


app.autodiscover_tasks(task_packages)


def _make_filesystem_broker_folders():
    """kombu's filesystem transport does not create its folders; the web process and the worker both need them."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL == "filesystem://":
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders = [options[key] for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")]
        if settings.CELERY_RESULT_BACKEND.startswith("file://"):
            folders.append(settings.CELERY_RESULT_BACKEND.removeprefix("file://"))
        for folder in folders:
            Path(folder).mkdir(parents=True, exist_ok=True)


_make_filesystem_broker_folders()


# --- sending tasks from request handlers ---------------------------------------------------------------------------

logger = logging.getLogger(__name__)
# After a failed publish, skip the broker for this long: during an outage only one request per process pays the
# connect timeout; the others go on at once and the sweeper queues their work when the broker is back.
BROKER_DOWN_BACKOFF_S = 10.0
_broker_down_until = 0.0


def send_task(task, args=(), kwargs=None, **options):
    """Queue a task without failing or holding up the caller for long; returns whether the broker took it.

    One publish attempt, no retry loop (the broker's connect and read timeouts are short, see settings). A broker
    that is down or hung is logged as a warning and skipped for BROKER_DOWN_BACKOFF_S; the caller's data is
    already committed and the sweeper (`manage.py sweep_work`, `recover_training_jobs`, beat) queues the work again.
    """
    global _broker_down_until
    if task.app.conf.task_always_eager:  # tests and in-process runs: no broker, the task's own errors are the caller's
        task.apply_async(args=list(args), **({"kwargs": kwargs} if kwargs else {}), **options)
        return True
    if time.monotonic() < _broker_down_until:
        logger.warning("broker marked down: %s%r not queued now; the sweeper queues it later", task.name, tuple(args))
        return False
    try:
        task.apply_async(args=list(args), **({"kwargs": kwargs} if kwargs else {}), retry=False, **options)
    except (OperationalError, OSError) as error:  # the broker is down or hung: the work waits for the sweeper
        _broker_down_until = time.monotonic() + BROKER_DOWN_BACKOFF_S
        logger.warning("broker unreachable (%s: %s): %s%r not queued; the sweeper queues it later",
                       type(error).__name__, error, task.name, tuple(args))
        return False
    _broker_down_until = 0.0
    return True


def send_on_commit(task, *args, **kwargs):
    """Queue task(*args, **kwargs) once the surrounding transaction commits (send_task: never raises)."""
    from django.db import transaction

    transaction.on_commit(partial(send_task, task, args, kwargs))


@app.on_after_configure.connect
def add_sweepers(sender, **kwargs):
    """The sweepers run every SWEEP_INTERVAL seconds on the default queue, under `celery -A config beat` (or a worker
    started with -B); `manage.py sweep_work` and `manage.py recover_training_jobs` do the same from cron."""
    from django.conf import settings

    every = float(settings.SWEEP_INTERVAL)
    sender.add_periodic_task(every, sender.signature("annotator.tasks.sweep_work"), name="sweep-work")
    sender.add_periodic_task(
        every, sender.signature("annotator.tasks.expire_overdue_assignments"), name="expire-overdue-assignments"
    )
    sender.add_periodic_task(every, sender.signature("training.tasks.sweep_jobs"), name="sweep-training-jobs")
    # Prolific's webhook calls can be lost: a sync of every published Prolific batch brings what they missed.
    sender.add_periodic_task(float(settings.PROLIFIC_SYNC_INTERVAL), sender.signature(
        "annotator.providers.tasks.sync_market_batches", args=("prolific",)), name="sync-prolific-batches")
