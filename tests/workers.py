"""Real Celery worker processes for the tests that drive a task family from its public entry point.

A test that uses `celery_worker` (mark it `celery_worker`) gets a `celery -A config worker` process started the way
the README says, sharing the test's database (transactional: the worker sees what the test committed) and files
(MEDIA_ROOT), on a real broker:

- "configured": CELERY_BROKER_URL, Redis in CI (queues purged when the worker starts);
- "filesystem": the embedded default, kombu's filesystem transport in a folder of the worker's own.

Where the configured broker is Redis, `celery_worker` runs each test on both brokers (parametrised); with the embedded
default it is the filesystem broker once. The process is started once per test module and broker and reused.
"""
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from config import celery as celery_config
from config import settings as settings_module
from config.celery import app as celery_app

BASE_DIR = Path(django_settings.BASE_DIR)
STARTUP_TIMEOUT_S = 180


def database_url():
    """The test database, as a URL a worker process can open (SQLite: the test run's own file)."""
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    return (
        f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


def configured_broker_is_filesystem():
    return django_settings.CELERY_BROKER_URL.startswith("filesystem")


def broker_kinds():
    return ["filesystem"] if configured_broker_is_filesystem() else ["configured", "filesystem"]


def wait_for(condition, timeout, describe, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {describe()}")


def poll(read, until, timeout, worker, what):
    """Call read() until until(value); returns the last value (fails with the worker's log)."""
    seen = {}

    def done():
        seen["value"] = read()
        return until(seen["value"])

    wait_for(done, timeout, lambda: f"{what} (last seen: {seen.get('value')!r})\n{worker.log_tail()}", interval=0.2)
    return seen["value"]


class WorkerProcess:
    """`celery -A config worker -Q default,gpu --concurrency 1` (optionally with beat) in its own process group."""

    def __init__(self, directory, broker="configured", extra_env=None, beat=False, queues="default,gpu"):
        self.directory = Path(directory)
        self.media_root = self.directory / "media"
        self.work_dir = self.directory / "work"
        self.var_dir = self.directory / "var"
        self.broker = broker
        self.beat = beat
        self.queues = queues
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.env = dict(
            os.environ, DATABASE_URL=database_url(), VAR_DIR=str(self.var_dir), MEDIA_ROOT=str(self.media_root),
            TRAINING_WORK_DIR=str(self.work_dir), TRAINING_PROGRESS_INTERVAL="0.2", PYTHONUNBUFFERED="1",
            CELERY_TASK_ALWAYS_EAGER="false",
            OMP_NUM_THREADS="1",  # tiny models train faster on one thread than on cores shared with the suite
        )
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests; a deployment has no such thing
        if broker == "filesystem":
            self.env["CELERY_BROKER_URL"] = "filesystem://"
            self.env.pop("CELERY_RESULT_BACKEND", None)
        self.env.update(extra_env or {})
        self.process = None
        self.starts = 0

    @property
    def uses_filesystem_broker(self):
        """The filesystem broker is always the worker's own folder (under its VAR_DIR), never the shared var/."""
        return (self.env.get("CELERY_BROKER_URL") or "filesystem://").startswith("filesystem")

    @property
    def log(self):
        return self.directory / f"worker-{self.starts}.log"

    def command(self):
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", self.queues, "--concurrency", "1",
                   "--pool", "prefork", "-n", self.name, "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        if not self.uses_filesystem_broker:
            command.append("--purge")  # what earlier tests queued and nobody took is not this test's work
        if self.beat:
            command += ["-B", "--schedule", str(self.directory / "celerybeat-schedule")]
        return command

    def start(self):
        self.starts += 1
        for folder in ("broker", "processed", "control", "results"):
            (self.var_dir / "celery" / folder).mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(self.command(), cwd=BASE_DIR, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "ready." in self.log.read_text() or self.process.poll() is not None, STARTUP_TIMEOUT_S,
                 lambda: f"the worker to start:\n{self.log_tail()}")
        assert self.process.poll() is None, self.log_tail()

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def pool_pids(self):
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def kill_everything(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self):
        if self.running:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill_everything()

    def log_text(self):
        return "\n".join(log.read_text() for log in sorted(self.directory.glob("worker-*.log")))

    def log_tail(self, lines=40):
        return "\n".join(self.log.read_text().splitlines()[-lines:]) if self.log.exists() else "(no log)"

    TASK_LINE = re.compile(r"Task \S+\[([0-9a-f-]{36})\] (received|succeeded|raised|retry|failed|ignored|rejected)")

    def tasks_in_flight(self):
        """Ids of the tasks the log shows received and not yet ended (by their own log line)."""
        in_flight = set()
        for task_id, what in self.TASK_LINE.findall(self.log_text()):
            (in_flight.add if what == "received" else in_flight.discard)(task_id)
        return in_flight

    def wait_until_idle(self, timeout=60):
        """Let the tasks the test started end before the test database is emptied: a task writing during the flush
        deadlocks with its TRUNCATE ("Database test_luab couldn't be flushed")."""
        deadline = time.monotonic() + timeout
        while self.running and self.tasks_in_flight() and time.monotonic() < deadline:
            time.sleep(0.1)

    def assert_no_unregistered_tasks(self):
        assert "unregistered task" not in self.log_text().lower(), self.log_tail(80)


def _drop_connection_pools():
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


class PublishTo:
    """Point the test process's Celery app at a worker's broker (and back): what the test's requests queue goes there.
    Tasks are never run inline meanwhile."""

    KEYS = ("CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "CELERY_TASK_ALWAYS_EAGER")

    def __init__(self, worker):
        self.worker = worker
        self.saved = None

    def __enter__(self):
        conf = celery_app.conf
        self.saved = {key: conf[key] for key in self.KEYS}
        self.saved_environment = os.environ.get("CELERY_BROKER_URL")
        if self.worker.uses_filesystem_broker:
            os.environ["CELERY_BROKER_URL"] = "filesystem://"  # Celery reads it before its configuration
            conf.update(CELERY_BROKER_URL="filesystem://",
                        CELERY_BROKER_TRANSPORT_OPTIONS=settings_module.filesystem_broker_options(self.worker.var_dir))
        conf.update(CELERY_TASK_ALWAYS_EAGER=False)
        _drop_connection_pools()
        celery_config._broker_down_until = 0.0
        return self.worker

    def __exit__(self, *exc):
        if self.saved_environment is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = self.saved_environment
        celery_app.conf.update(self.saved)
        _drop_connection_pools()
        celery_config._broker_down_until = 0.0


@pytest.fixture(scope="module", params=broker_kinds())
def celery_worker_process(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """One worker per test module and broker kind, started on first use (`celery_worker`)."""
    process = WorkerProcess(tmp_path_factory.mktemp(f"worker-{request.param}"), broker=request.param)
    yield process
    process.stop()


@contextmanager
def serving_the_test(request, process, settings):
    """The worker running, with the test's files where it reads them and its broker the one the test's requests
    publish to; idle again (or stopped, if it runs beat) before the test's database is emptied."""
    assert request.node.get_closest_marker("celery_worker"), "mark the test with @pytest.mark.celery_worker"
    settings.MEDIA_ROOT = process.media_root
    settings.TRAINING_WORK_DIR = process.work_dir
    if not process.running:
        process.start()
    try:
        with PublishTo(process):
            yield process
    finally:
        if process.beat:
            process.stop()  # beat would start new sweeps during the flush
        else:
            process.wait_until_idle()
    process.assert_no_unregistered_tasks()


@pytest.fixture
def celery_worker(request, celery_worker_process, transactional_db, settings):
    """The module's worker (see serving_the_test). The test must be marked `celery_worker` (the suite runs tasks
    inline otherwise)."""
    with serving_the_test(request, celery_worker_process, settings) as process:
        yield process


@pytest.fixture(params=broker_kinds())
def beat_worker(request, transactional_db, settings, tmp_path):
    """A worker of the test's own that runs beat too, the sweepers every 2 s for work older than 3 s."""
    process = WorkerProcess(tmp_path / f"beat-worker-{request.param}", broker=request.param, beat=True,
                            extra_env={"SWEEP_INTERVAL": "2", "SWEEP_AFTER": "3"})
    with serving_the_test(request, process, settings):
        yield process
