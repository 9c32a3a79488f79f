"""config/gunicorn.conf.py run by a real gunicorn: what its access log keeps (issue 14, point 6)."""
import os
import subprocess
import time
from pathlib import Path

import requests

from benchmarks.support import free_port

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
