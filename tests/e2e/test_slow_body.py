"""Slow-body clients (slowloris) against a real gunicorn with config/gunicorn.conf.py (benchmarks/faults/slow_body.py).

More slow clients than gunicorn has threads, each trickling a worker API body a byte a second and reconnecting
when dropped: honest requests must still be answered in time and the slow ones cut off. gunicorn's plain gthread
worker fails the same run (the control shows the test can fail).
"""
import argparse

import pytest
from django.conf import settings

from benchmarks.faults import slow_body
from benchmarks.support import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

READ_TIMEOUT = 3.0


def run_attack(worker_class, seconds):
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("gunicorn needs a database another process can open: PostgreSQL")
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database.get("PASSWORD") else "")
    database_url = f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    tokens = slow_body.make_tokens(5)  # committed (transaction=True): the gunicorn process sees them
    args = argparse.Namespace(workers=1, threads=2, read_timeout=READ_TIMEOUT, worker_class=worker_class)
    port = free_port()
    server = slow_body.start_gunicorn(port, database_url, args, settings.SECRET_KEY)
    try:
        return slow_body.attack(port, tokens, slow=4, seconds=seconds, read_timeout=READ_TIMEOUT)
    finally:
        slow_body.stop(server)


def test_slow_bodies_are_cut_off_and_honest_requests_still_answered():
    result = run_attack(slow_body.DEADLINE_WORKER, seconds=12)
    # Every honest request answered while the slow clients hold more connections than there are threads; every slow
    # connection cut with a 408 (the benchmark, not this test, reports how fast: benchmarks/faults/slow_body.py).
    assert result["honest_failures"] == [] and result["honest_requests"] >= 3, result
    assert result["slow_dropped"] >= 4, result
    assert result["slow_answers"] == ["HTTP/1.1 408"], result


def test_control_gunicorns_plain_threaded_worker_is_held_by_slow_bodies():
    result = run_attack("gthread", seconds=8)
    assert not result["passed"], result
    assert result["slow_dropped"] == 0, result
