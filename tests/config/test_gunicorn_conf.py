"""config/gunicorn.conf.py run by a real gunicorn: what its access log keeps (issue 14, point 6)."""
import argparse
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings

from benchmarks.support import free_port
from tests.annotator.test_worker_api import accept
from tests.factories import make_imagenet_hit

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_access_log_keeps_no_beacon_token_and_no_market_ids(tmp_path):
    log = tmp_path / "access.log"
    port = free_port()
    env = {
        **os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "gunicorn-conf-test-" + "x" * 40, "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "GUNICORN_ACCESS_LOG": str(log), "VAR_DIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "config/gunicorn.conf.py"), "config.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                requests.get(f"{base}/api/worker/assignment", timeout=30)
                break
            except requests.RequestException:
                assert server.poll() is None and time.time() < deadline, "gunicorn did not start"
                time.sleep(0.3)
        beacon = requests.post(f"{base}/api/worker/pages/0/events?token=SECRET-BEACON-TOKEN", data="{}",
                               headers={"Referer": f"{base}/task/1/?workerId=MARKETWORKER&assignmentId=MA1"},
                               timeout=30)
        task = requests.get(f"{base}/task/1/?workerId=MARKETWORKER&assignmentId=MARKETASSIGNMENT", timeout=30)
    finally:
        server.terminate()
        server.wait(20)

    assert beacon.status_code == 403 and task.status_code >= 400  # no such token, no such HIT: logged all the same
    logged = log.read_text()
    assert '"POST /api/worker/pages/0/events HTTP/1.1" 403' in logged and '"GET /task/1/ HTTP/1.1"' in logged
    assert "SECRET-BEACON-TOKEN" not in logged and "MARKET" not in logged, logged


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_through_gunicorn_is_read_and_one_past_the_limit_is_413(monkeypatch):
    """Django reads a body without Content-Length as empty (it was a 400 "truncated"); gunicorn decodes the chunks."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("gunicorn needs a database another process can open: PostgreSQL")
    from annotator.models import EventBatch
    from benchmarks.faults import slow_body

    credentials = database["USER"] + (f":{database['PASSWORD']}" if database.get("PASSWORD") else "")
    database_url = f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    _, token = accept(make_imagenet_hit(n_pages=1))
    monkeypatch.setenv("WORKER_MAX_BODY_BYTES", "3000")
    port = free_port()
    args = argparse.Namespace(workers=1, threads=2, read_timeout=30, worker_class=slow_body.DEADLINE_WORKER)
    server = slow_body.start_gunicorn(port, database_url, args, settings.SECRET_KEY)

    def chunked(n_events):
        events = [{"type": "visibility", "state": "hidden", "time": int(time.time() * 1000)}] * n_events
        body = json.dumps({"batch_id": str(uuid.uuid4()), "seq": 1, "sent_at": int(time.time() * 1000),
                           "events": events}).encode()
        pieces = (body[i:i + 500] for i in range(0, len(body), 500))  # a generator: requests sends it chunked
        return requests.post(f"http://127.0.0.1:{port}/api/worker/pages/0/events", data=pieces, timeout=30,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    try:
        stored, too_big = chunked(2), chunked(100)
    finally:
        slow_body.stop(server)

    assert stored.status_code == 201 and stored.json() == {"stored": 2}
    assert too_big.status_code == 413 and too_big.json()["error"]["message"] == (
        "the body is over the limit of 3000 bytes")
    assert EventBatch.objects.count() == 1
