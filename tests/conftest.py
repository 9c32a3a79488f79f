import pytest

from config.celery import app as celery_app
from tests.workers import beat_worker, celery_worker, celery_worker_process  # noqa: F401  (real Celery workers)


@pytest.fixture(autouse=True)
def _isolated_files_and_eager_celery(settings, tmp_path, request):
    """Each test writes files under its own tmp folder; Celery runs tasks inline unless a test needs a real worker."""
    settings.MEDIA_ROOT = tmp_path / "media"
    if request.node.get_closest_marker("celery_worker") is None:
        celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True  # the namespaced key: the plain one is ignored
        yield
        celery_app.conf.CELERY_TASK_ALWAYS_EAGER = False
    else:
        yield


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """The throttle counters (in the default cache) start empty in every test: one test's requests never count
    against the next one's (the worker API limits requests per assignment and bad tokens and entries per address)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_open_work_cache():
    """The worker path's per-process cache (HITs, pages, candidates by id) starts empty in every test: a test's
    database may reuse the ids of an earlier test's rows (SQLite rolls its id counters back)."""
    from annotator.worker.selectors import forget_open_work

    forget_open_work()
