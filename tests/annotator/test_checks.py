import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from annotator import checks


def ids(messages):
    return [message.id for message in messages]


def test_demo_secret_key_and_demo_salt_are_flagged(settings):
    settings.SECRET_KEY = settings.INSECURE_DEV_KEY
    settings.WORKER_ID_SALT = "demo-worker-salt"
    assert ids(checks.check_secret_key(None)) == ["annotator.W001", "annotator.W002"]
    settings.WORKER_ID_SALT = "a real salt"
    assert ids(checks.check_secret_key(None)) == ["annotator.W001"]
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    settings.WORKER_ID_SALT = "demo-worker-salt"
    assert ids(checks.check_secret_key(None)) == ["annotator.W002"]
    settings.WORKER_ID_SALT = "a real salt"
    assert checks.check_secret_key(None) == []


def test_unreachable_broker_is_flagged_and_names_the_url(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    settings.CELERY_BROKER_CONNECTION_TIMEOUT = 1
    (warning,) = checks.check_broker(None)
    assert warning.id == "annotator.W003" and "redis://127.0.0.1:9/0" in warning.msg


def test_reachable_broker_passes():
    assert checks.check_broker(None) == []


def test_training_without_a_gpu_queue_is_flagged(settings):
    settings.CELERY_TASK_ROUTES = {"training.tasks.*": {"queue": "default"}}
    assert ids(checks.check_gpu_queue(None)) == ["annotator.W004"]
    settings.TRAINING_ENABLED = False
    assert checks.check_gpu_queue(None) == []


def deploy_check(tmp_path, **overrides):
    # Browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a production environment has no such thing.
    inherited = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {**inherited, "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
           "WORKER_ID_SALT": "x", "DJANGO_ALLOWED_HOSTS": "example.com", "VAR_DIR": str(tmp_path), **overrides}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.slow
def test_check_deploy_passes_with_production_settings_and_fails_without_a_key(tmp_path):
    passed = deploy_check(tmp_path)
    assert passed.returncode == 0, passed.stderr
    failed = deploy_check(tmp_path, DJANGO_SECRET_KEY=django_settings.INSECURE_DEV_KEY)
    assert failed.returncode != 0 and "annotator.W001" in failed.stderr
