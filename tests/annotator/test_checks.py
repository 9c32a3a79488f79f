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


def test_a_bucket_without_signed_urls_is_flagged(settings):
    settings.AWS_STORAGE_BUCKET_NAME, settings.AWS_QUERYSTRING_AUTH = "luab", False
    assert ids(checks.check_signed_file_urls(None)) == ["annotator.W005"]
    settings.AWS_QUERYSTRING_AUTH = True
    assert checks.check_signed_file_urls(None) == []
    settings.AWS_STORAGE_BUCKET_NAME, settings.AWS_QUERYSTRING_AUTH = "", False  # local files: nothing to sign
    assert checks.check_signed_file_urls(None) == []


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


def test_every_task_the_code_defines_or_sends_is_registered_in_a_fresh_worker():
    defined = checks.defined_task_names(checks.our_app_paths())
    # The families a deployment runs: exports and reports, reviews, market calls, display versions, training, sweepers.
    assert {"annotator.exports.run_export_job", "annotator.exports.build_byproduct_report",
            "annotator.review.tasks.auto_review", "annotator.providers.tasks.send_decision",
            "annotator.tasks.make_display_versions", "training.tasks.run_training_job",
            "training.tasks.run_inference_job", "annotator.tasks.sweep_work", "training.tasks.sweep_jobs"} <= set(defined)
    assert checks.check_tasks_registered(None) == []


def test_a_task_that_a_worker_would_not_import_fails_the_check(tmp_path):
    """A task defined outside a tasks.py (the bug that left exports pending for ever: no worker imported the module)
    and a name sent that nothing defines are both errors naming the task and where it is."""
    package = tmp_path / "reports_app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(
        "from celery import shared_task\n\n\n@shared_task(name='reports_app.build')\ndef build(batch_id):\n    pass\n")
    (package / "beat.py").write_text("def schedule(app):\n    return app.signature('reports_app.nightly')\n")
    errors = checks.check_tasks_registered(None, roots=[package])
    assert ids(errors) == ["annotator.E001", "annotator.E001"]
    assert "'reports_app.build'" in errors[0].msg and "jobs.py:5" in errors[0].msg
    assert "'reports_app.nightly'" in errors[1].msg and "beat.py:2" in errors[1].msg


@pytest.mark.django_db
def test_a_prolific_batch_without_the_token_or_webhook_secret_is_flagged(settings):
    from annotator.models import Provider
    from tests.factories import BatchFactory

    settings.PROLIFIC_API_TOKEN = settings.PROLIFIC_WEBHOOK_SECRET = ""
    BatchFactory(provider=Provider.MTURK)
    assert checks.check_prolific_credentials(None) == []  # no batch uses Prolific
    BatchFactory(provider=Provider.PROLIFIC, name="round-1-prolific")
    warnings = checks.check_prolific_credentials(None)
    assert ids(warnings) == ["annotator.W006", "annotator.W007"]
    assert "PROLIFIC_API_TOKEN is not set" in warnings[0].msg and "round-1-prolific" in warnings[0].msg
    settings.PROLIFIC_API_TOKEN = "token"
    settings.PROLIFIC_WEBHOOK_SECRET = "secret"
    assert checks.check_prolific_credentials(None) == []
