"""The Celery application: broker from CELERY_BROKER_URL, else kombu's filesystem transport under var/."""
import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("luab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
