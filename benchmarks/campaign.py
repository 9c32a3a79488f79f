"""The load and fault campaign's shared harness (issue 9): a stack to run and break, a crowd to drive, a ledger.

Scripts import it (benchmarks/soak.py, benchmarks/faults/*.py); the API below is kept stable.

    from benchmarks.campaign import Stack, prepare_campaign, LoadDriver, reconcile

    with Stack(name="h1", database_url="postgres://postgres@127.0.0.1:5432/luab_h1", redis_port=16381,
               own_postgres=False, gunicorn_workers=3, gunicorn_threads=8) as stack:
        stack.setup()                        # fresh database, Django set up in this process, migrated
        hits = prepare_campaign(data_dir)    # demo image sets imported, one ImageNet- and one COCO-style batch
        stack.start()                        # redis-server (own), gunicorn (gthread), a Celery worker
        driver = LoadDriver(stack.base_url, hits, n_workers=50, minutes=1, pace=1.0)
        driver.start()                       # threads; driver.wait() blocks until every simulated worker ended
        ... stack.kill9_gunicorn_worker(); stack.stop_redis(); stack.start_redis(); stack.kill_celery() ...
        driver.wait()
        print(driver.report())               # held load, latencies per request type
        result = reconcile(driver.ledger, timeout_s=120)   # prints itself; result.ok
    sys.exit(0 if result.ok else 1)

Stack(name, database_url=None, redis_port=16381, own_redis=True, own_postgres=False, postgres_port=55433,
      gunicorn_workers=3, gunicorn_threads=8, celery=True, celery_concurrency=1, env=None)
    Starts and stops, with the methods a fault script needs:
    - setup(reuse=False): with own_postgres, initdb + pg_ctl start of a private cluster (port postgres_port, data
      in /tmp/<name>-pg); creates a fresh database (or reuses it), points Django in this process at it
      (same settings environment as the servers) and migrates. Call before prepare_campaign.
    - start() / stop(): own redis-server (`--port redis_port --save "" --appendonly no`), gunicorn on a free
      port (stack.base_url) and a Celery worker (queues default,gpu) with beat inside (-B; the sweepers run
      every SWEEP_INTERVAL=10 s for work older than SWEEP_AFTER=20 s). stop() also stops the private PostgreSQL.
      A Stack is a context manager: leaving the block stops everything it started, even on errors.
    - gunicorn_worker_pids(); kill9_gunicorn_worker(busy=True, timeout_s=5) -> pid: SIGKILL one worker,
      preferring one that is running (mid-request); the master starts a new one.
    - stop_redis() / start_redis(): only with own_redis (a private redis-server this Stack started).
    - kill_celery(sig=SIGKILL) kills the Celery worker's whole process group (main process, pool children
      and the embedded beat, so a task in progress dies with it); start_celery() starts a new one;
      celery_pool_pids(); celery_busy() tells whether a pool process runs a task (`celery inspect active`,
      a few seconds).
    - stop_postgres(mode="fast") / start_postgres() / restart_postgres(): only with own_postgres.
    - env: the environment the servers run with; redis_url(db), database_url, log files under stack.log_dir.

prepare_campaign(data_dir, imagenet_pages=10, coco_pages=20, max_assignments=5000) -> {"imagenet": [Hit],
    "coco": [Hit]}: the demo image sets (generated once into data_dir, then reused), imported, packed into one
    batch of each kind (`campaign-imagenet`, `campaign-coco`), published, every HIT open to many workers. The
    demo sets give 3 HITs of each kind: 8 ImageNet-style pages of 48 candidates, 16 COCO-style pages.

LoadDriver(base_url, hits, n_workers, minutes, pace=1.0, mix=MIX, seed=0, ramp_s=None, finish="partial",
           retry_for_s=600, timeout_s=60)
    n_workers simulated workers, one thread each, mostly asleep: each works whole HITs, alternating the two
    kinds, over HTTP exactly as the task page does (devtools.simulator's worker, paced): opens the task URL,
    reads its assignment, reads each page, flushes its events (each flush with a client batch_id) at the times a
    person would, saves the page (client save_id) when the person would, submits. `pace` > 1 runs the human
    clock faster (pace 1: a diligent ImageNet-style HIT takes about 9 minutes). Starts are spread over ramp_s
    (default: a fifth of the run, at most 60 s). After `minutes` no HIT is started; a worker inside a HIT hands
    in what it has saved (finish="partial": flush what is pending, submit with partial=true) or works it to the
    end (finish="complete"). Every request is retried like the page does (connection errors, timeouts, 408,
    429 and 5xx: the same body, backoff 1 s doubling to 30 s) for up to retry_for_s; other 4xx are failures.
    - start(), wait(), run() (= start + wait), stop_now() (ends the run early: workers hand in).
    - ledger: Ledger, every event batch / page save / submit that got a success answer (ledger.counts()).
    - stats: Stats, latencies per request type ("task", "assignment", "page", "events", "save", "submit");
      stats.summary() -> dict (held_load, latency_ok_in_window, latency_ok, statuses, retries, failures);
      report() -> str: held load (requests/s, saves/s, event batches/s over the run window), p50/p95/p99 per
      type inside the window and overall, answers per type, retries, failures. counters: HITs started,
      submitted, submitted partial, failed.

run_campaign(args, during=None, own_postgres=False, title, env=None) -> (driver, Reconciliation): what a script
    does with
    add_stack_arguments(parser): set up, prepare, start the stack, start the crowd, call during(stack, driver)
    (the fault: it runs in the main thread while the crowd works), wait, print the report, reconcile.
    A fault script is `driver, result = run_campaign(args, during=my_fault); sys.exit(0 if result.ok else 1)`.
    argument_parser(doc, name, **defaults) (FAULT_LOAD: a fault script's load), add_stack_arguments(parser, name),
    stack_from_args(args, own_postgres, env), driver_from_args(args, stack, hits)
    are its pieces; env adds to (or overrides) the servers' environment.

reconcile(ledger, timeout_s=120, poll_s=2, out=print) -> Reconciliation (ok, checks, problems, as_dict()):
    every event batch and page save in the ledger stored exactly once (by client id; an ImageNet-style page
    holds one record per candidate, 48, a COCO-style page 1), no duplicate anywhere in the campaign's batches
    (unique keys, record counts per saved page, no records without their page), every submitted assignment
    decided by the automatic review (waits up to timeout_s for the Celery worker to catch up).

Nothing here touches the shared PostgreSQL or Redis servers beyond the database named in database_url.
"""
import argparse
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.support import free_port, fresh_database, setup_django, wait_until  # noqa: E402

logger = logging.getLogger("campaign")

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BENCH_SECRET_KEY = "campaign-benchmark-only-secret-key-" + "x" * 40
MIX = "diligent=0.7,sloppy=0.15,spammer=0.1,centre=0.05"
REQUEST_TYPES = ("task", "assignment", "page", "events", "save", "submit")
BATCH_NAMES = {"imagenet": "campaign-imagenet", "coco": "campaign-coco"}


# ---------------------------------------------------------------- the stack

def _wait_for(check, timeout_s, what):
    errors = []

    def ready():
        try:
            return check()
        except Exception as error:  # noqa: BLE001 - anything means "not yet"
            errors.append(error)
            return False

    if not wait_until(ready, timeout_s, poll_s=0.3):
        raise RuntimeError(f"{what} not ready within {timeout_s} s ({errors[-1] if errors else None})")


def _children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _proc_state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _cpu_ticks(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return None


def _end_group(process, sig=signal.SIGTERM, timeout_s=20):
    """Signal a process started with start_new_session (its whole group) and wait; SIGKILL when it lingers."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


class Stack:
    """gunicorn + a Celery worker + (own) Redis + (optionally own) PostgreSQL, with ways to break each."""

    def __init__(self, name="campaign", database_url=None, redis_port=16381, own_redis=True, own_postgres=False,
                 postgres_port=55433, gunicorn_workers=3, gunicorn_threads=8, celery=True, celery_concurrency=1,
                 env=None):
        self.name = name
        self.own_redis, self.own_postgres = own_redis, own_postgres
        self.redis_port, self.postgres_port = redis_port, postgres_port
        self.gunicorn_workers, self.gunicorn_threads = gunicorn_workers, gunicorn_threads
        self.celery_enabled, self.celery_concurrency = celery, celery_concurrency
        self.log_dir = Path(f"/tmp/{name}-campaign-logs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.var_dir = Path(f"/tmp/{name}-campaign-var")
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.pg_dir = Path(f"/tmp/{name}-pg")
        db_name = f"luab_{name}_campaign"
        if own_postgres:
            db_name = urlparse(database_url).path.lstrip("/") if database_url else db_name
            database_url = f"postgres://postgres@127.0.0.1:{postgres_port}/{db_name}"
        self.database_url = database_url or f"postgres://postgres@127.0.0.1:5432/{db_name}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.redis_url(0),
            "CACHE_URL": self.redis_url(1),
            "DJANGO_DEBUG": "false", "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECRET_KEY": BENCH_SECRET_KEY, "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PUBLIC_BASE_URL": self.base_url,
            "VAR_DIR": str(self.var_dir), "LOG_LEVEL": "WARNING",
            # Every simulated worker comes from 127.0.0.1: per-address limits would throttle the whole crowd.
            "WORKER_API_RATE": "100000/min", "WORKER_ENTRY_RATE": "none", "WORKER_BAD_TOKEN_RATE": "none",
            "WORKER_OPEN_PER_ADDRESS": "none",
            # Beat runs in the Celery worker (-B): the sweepers re-queue work a fault left undone, within a minute.
            "SWEEP_INTERVAL": "10", "SWEEP_AFTER": "20",
            **(env or {}),
        }
        self.redis = self.gunicorn = self.celery = None
        self._logs = []

    # -- lifecycle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def redis_url(self, db):
        return f"redis://127.0.0.1:{self.redis_port}/{db}"

    def setup(self, reuse=False):
        """Private PostgreSQL (own_postgres), a fresh database, Django set up here with the servers' settings."""
        if self.own_postgres:
            self._init_postgres()
            self.start_postgres()
        fresh_database(self.database_url, reuse=reuse)
        keys = ("CELERY_BROKER_URL", "CACHE_URL", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "VAR_DIR",
                "LOG_LEVEL", "WORKER_API_RATE", "PUBLIC_BASE_URL")
        setup_django(self.database_url, migrate=True, **{key: self.env[key] for key in keys})

    def start(self):
        if self.own_redis:
            self.start_redis()
        self.start_gunicorn()
        if self.celery_enabled:
            self.start_celery()
        return self

    def stop(self):
        _end_group(self.gunicorn)
        _end_group(self.celery)
        if self.own_redis:
            self.stop_redis()
        if self.own_postgres and self.pg_dir.exists():
            try:
                self.stop_postgres()
            except RuntimeError as error:
                logger.warning("%s", error)
        for log in self._logs:
            log.close()
        self._logs = []

    def _log(self, what):
        handle = open(self.log_dir / f"{what}.log", "ab")
        self._logs.append(handle)
        return handle

    def _spawn(self, command, what):
        log = self._log(what)
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def cpu_seconds(self):
        """User + system CPU seconds so far of the gunicorn workers, the Celery processes and this process."""
        ticks = os.sysconf("SC_CLK_TCK")
        parts = {"gunicorn workers": self.gunicorn_worker_pids(),
                 "celery": ([self.celery.pid] if self.celery else []) + self.celery_pool_pids()}
        seconds = {part: sum(_cpu_ticks(pid) or 0 for pid in pids) / ticks for part, pids in parts.items()}
        own = os.times()
        seconds["load generator (this process)"] = own.user + own.system
        return seconds

    # -- gunicorn

    def start_gunicorn(self):
        self.gunicorn = self._spawn([
            # The deployment's settings (the deadline thread worker, access log), this stack's counts.
            str(ROOT / ".venv/bin/gunicorn"), "-c", "config/gunicorn.conf.py", "config.wsgi",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.gunicorn_workers),
            "--threads", str(self.gunicorn_threads), "--timeout", "60", "--graceful-timeout", "10",
            "--keep-alive", "10", "--log-level", "warning",
        ], "gunicorn")
        _wait_for(lambda: requests.get(f"{self.base_url}/api/worker/assignment", timeout=5).status_code < 500,
                  120, "gunicorn")
        logger.info("gunicorn %s on %s", self.gunicorn.pid, self.base_url)

    def gunicorn_worker_pids(self):
        return _children(self.gunicorn.pid) if self.gunicorn else []

    def kill9_gunicorn_worker(self, busy=True, timeout_s=5.0):
        """SIGKILL one gunicorn worker, one that is on the CPU (mid-request) when busy and one is seen in time."""
        deadline = time.monotonic() + timeout_s
        pids = self.gunicorn_worker_pids()
        victim = None
        while busy and victim is None and time.monotonic() < deadline:
            before = {pid: _cpu_ticks(pid) for pid in pids}
            time.sleep(0.02)
            for pid in pids:
                after = _cpu_ticks(pid)
                if _proc_state(pid) == "R" or (after is not None and before[pid] is not None and after > before[pid]):
                    victim = pid
                    break
            pids = self.gunicorn_worker_pids()
        if victim is None:
            if not pids:
                raise RuntimeError("no gunicorn worker to kill")
            victim = random.choice(pids)
        os.kill(victim, signal.SIGKILL)
        logger.warning("killed gunicorn worker %s with SIGKILL", victim)
        return victim

    # -- redis

    def start_redis(self):
        if not self.own_redis:
            raise RuntimeError("this Stack does not own its Redis")
        if self.redis is not None and self.redis.poll() is None:
            return
        self.redis = self._spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--daemonize", "no"], "redis")
        import redis

        _wait_for(lambda: redis.Redis(port=self.redis_port, socket_timeout=2).ping(), 30, "redis-server")

    def stop_redis(self):
        if not self.own_redis:
            raise RuntimeError("this Stack does not own its Redis")
        _end_group(self.redis)
        self.redis = None

    # -- celery

    def start_celery(self):
        self.celery = self._spawn([
            str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-Q", "default,gpu",
            "-c", str(self.celery_concurrency), "--pool", "prefork", "-l", "warning",
            "-n", f"{self.name}-campaign-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
            "-B", "-s", str(self.var_dir / "celerybeat-schedule"),
        ], "celery")
        return self.celery.pid

    def kill_celery(self, sig=signal.SIGKILL):
        """Kill the Celery worker and its pool processes at once (what a lost machine looks like)."""
        if self.celery is None:
            return
        try:
            os.killpg(self.celery.pid, sig)
        except ProcessLookupError:
            pass
        self.celery.wait(timeout=30)
        logger.warning("killed the celery worker %s (signal %s)", self.celery.pid, sig)
        self.celery = None

    def celery_pool_pids(self):
        return _children(self.celery.pid) if self.celery else []

    def celery_busy(self):
        """True when a pool process runs a task, read with `celery inspect active` (a few seconds)."""
        out = subprocess.run([str(ROOT / ".venv/bin/celery"), "-A", "config", "inspect", "active", "-j",
                              "--timeout", "3"], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        return '"id"' in out.stdout

    # -- postgres (private cluster)

    def _pg(self, *arguments, check=True):
        command = [str(PG_BIN / arguments[0]), *arguments[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(arguments[:2])}: {result.stdout[-500:]} {result.stderr[-500:]}")
        return result

    def _init_postgres(self):
        if self.pg_dir.exists():
            self._pg("pg_ctl", "-D", str(self.pg_dir / "data"), "-m", "immediate", "stop", check=False)
            shutil.rmtree(self.pg_dir)
        (self.pg_dir / "run").mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.pg_dir, "postgres", "postgres")
            shutil.chown(self.pg_dir / "run", "postgres", "postgres")
        self._pg("initdb", "-D", str(self.pg_dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-sync")
        conf = self.pg_dir / "data" / "postgresql.conf"
        with open(conf, "a") as handle:
            handle.write(f"\nport = {self.postgres_port}\nlisten_addresses = '127.0.0.1'\n"
                         f"unix_socket_directories = '{self.pg_dir / 'run'}'\nmax_connections = 200\n"
                         "shared_buffers = 128MB\nfsync = on\n")

    def start_postgres(self):
        if not self.own_postgres:
            raise RuntimeError("this Stack does not own its PostgreSQL")
        self._pg("pg_ctl", "-D", str(self.pg_dir / "data"), "-l", str(self.pg_dir / "postgres.log"), "-w",
                 "-t", "60", "start")

    def stop_postgres(self, mode="fast"):
        if not self.own_postgres:
            raise RuntimeError("this Stack does not own its PostgreSQL")
        self._pg("pg_ctl", "-D", str(self.pg_dir / "data"), "-m", mode, "-w", "-t", "60", "stop")

    def restart_postgres(self, mode="fast", down_s=0.0):
        self.stop_postgres(mode)
        time.sleep(down_s)
        self.start_postgres()


# ---------------------------------------------------------------- data

def prepare_campaign(data_dir, imagenet_pages=10, coco_pages=20, max_assignments=5000, hits_per_kind=None):
    """One ImageNet-style and one COCO-style batch of the demo image sets, published, each HIT open to many.

    hits_per_kind: copy the HITs (same pages, new rows) until each batch has that many, so the crowd spreads over
    many HITs as on a market (the demo sets make only a few HITs, which every simulated worker then shares).
    """
    from django.core.management import call_command

    from annotator.models import Batch, Hit

    data = Path(data_dir)
    for kind in ("imagenet", "coco"):
        if not (data / kind / "demo_manifest.json").exists():
            call_command("make_demo_dataset", kind=kind, out=str(data / kind), verbosity=0)
    hits = {}
    for kind, dataset, pages in (("imagenet", "campaign-imagenet-images", imagenet_pages),
                                 ("coco", "campaign-coco-images", coco_pages)):
        if not Batch.objects.filter(name=BATCH_NAMES[kind]).exists():
            if kind == "imagenet":
                call_command("import_imagenet", str(data / "imagenet"), name=dataset, verbosity=0)
            else:
                for split in ("train", "val", "shifted"):
                    call_command("import_coco", images=str(data / "coco" / "images" / split),
                                 annotations=str(data / "coco" / "annotations" / f"instances_{split}.json"),
                                 name=dataset, split=split, verbosity=0)
            call_command("build_hits", dataset=dataset, batch=BATCH_NAMES[kind], pages_per_hit=pages, verbosity=0)
        batch = Batch.objects.get(name=BATCH_NAMES[kind])
        if hits_per_kind:
            _copy_hits(batch, hits_per_kind)
        Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PUBLISHED, assignments_per_hit=max_assignments,
                                                 max_hits_per_worker=None)
        batch.hits.update(status=Hit.Status.PUBLISHED, max_assignments=max_assignments)
        hits[kind] = list(Batch.objects.get(pk=batch.pk).hits.order_by("index"))
    from django.db import connections

    connections.close_all()
    return hits


def _copy_hits(batch, n_hits):
    """Add copies of the batch's HITs (pages and candidates included) until it has n_hits."""
    from annotator.models import Hit, HitPage, PageItem

    originals = list(batch.hits.order_by("index").prefetch_related("pages__items"))
    for index in range(len(originals), n_hits):
        original = originals[index % len(originals)]
        hit = Hit.objects.create(batch=batch, index=index, status=original.status)
        pages = HitPage.objects.bulk_create(
            HitPage(hit=hit, index=page.index, category_id=page.category_id, image_id=page.image_id)
            for page in original.pages.all()
        )
        PageItem.objects.bulk_create(
            PageItem(page=copy, image_id=item.image_id, position=item.position, in_class=item.in_class,
                     is_gold=item.is_gold)
            for copy, page in zip(pages, original.pages.all()) for item in page.items.all()
        )


# ---------------------------------------------------------------- ledger and stats

@dataclass
class Ledger:
    """What the server acknowledged. Keys name the assignment by (HIT id, worker external id)."""
    events: dict = field(default_factory=dict)  # (hit, worker, batch_id) -> (page index, n events)
    saves: dict = field(default_factory=dict)  # (hit, worker, save_id) -> (page index, kind, n records)
    submits: dict = field(default_factory=dict)  # (hit, worker) -> {"partial", "completion_code", "pages"}
    hits_started: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, table, key, value):
        with self._lock:
            getattr(self, table)[key] = value

    def counts(self):
        with self._lock:  # the crowd's threads add entries meanwhile
            events, saves, submits = list(self.events.values()), len(self.saves), list(self.submits.values())
        return {"event batches": len(events), "events": sum(n for _, n in events), "page saves": saves,
                "submits": len(submits), "partial submits": sum(s["partial"] for s in submits)}


class Stats:
    """Latency of every answered attempt per request type, successes over time, retries and failures."""

    def __init__(self):
        self._lock = threading.Lock()
        self.latencies = defaultdict(list)  # type -> [ms] of attempts that got an HTTP answer
        self.ok_latencies = defaultdict(list)  # type -> [ms] of successful attempts
        self.done = defaultdict(list)  # type -> [monotonic time of a success]
        self.statuses = defaultdict(Counter)  # type -> Counter of status ("error" for no answer)
        self.retries = Counter()
        self.failures = []  # (type, path, status, body)
        self.window = (None, None)

    def attempt(self, kind, ms, status, ok):
        with self._lock:
            self.statuses[kind][status if status is not None else "error"] += 1
            if status is not None:
                self.latencies[kind].append(ms)
            if ok:
                self.ok_latencies[kind].append(ms)
                self.done[kind].append(time.monotonic())

    def failure(self, kind, path, status, body):
        with self._lock:
            self.failures.append((kind, path, status, body[:300]))

    @staticmethod
    def percentiles(values):
        if not values:
            return {"n": 0}
        ordered = sorted(values)
        cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
        return {"n": len(ordered), "p50_ms": round(cuts[49], 1), "p95_ms": round(cuts[94], 1),
                "p99_ms": round(cuts[98], 1), "max_ms": round(ordered[-1], 1)}

    def held_load(self):
        """Successes per second inside the run window (start .. the moment no HIT is started any more)."""
        start, end = self.window
        if start is None or end is None or end <= start:
            return {}
        span = end - start
        inside = {kind: sum(start <= t <= end for t in times) for kind, times in self.done.items()}
        return {"window_s": round(span, 1), "requests_per_s": round(sum(inside.values()) / span, 1),
                "saves_per_s": round(inside.get("save", 0) / span, 2),
                "event_batches_per_s": round(inside.get("events", 0) / span, 1),
                "submits_per_s": round(inside.get("submit", 0) / span, 2)}

    def in_window(self, kind):
        """Latencies (ms) of the successes that ended inside the run window (the held load, not the hand-in)."""
        start, end = self.window
        if start is None:
            return []
        return [ms for ms, t in zip(self.ok_latencies[kind], self.done[kind]) if start <= t <= end]

    def summary(self):
        with self._lock:  # callable while the crowd works
            return self._summary()

    def _summary(self):
        return {
            "held_load": self.held_load(),
            "latency_ok": {kind: self.percentiles(self.ok_latencies[kind]) for kind in REQUEST_TYPES},
            "latency_ok_in_window": {kind: self.percentiles(self.in_window(kind)) for kind in REQUEST_TYPES},
            "statuses": {kind: dict(self.statuses[kind]) for kind in REQUEST_TYPES if self.statuses[kind]},
            "retries": dict(self.retries), "failures": len(self.failures),
        }


# ---------------------------------------------------------------- the crowd

class RunOver(Exception):
    """The run's end came while waiting: hand in."""


class PacedTime:
    """The human clock in real time, sped up by the run's pace; once the run is over the worker hands in (finish
    "partial") or works on (finish "complete")."""

    def __init__(self, worker, hand_in_allowed):
        self.worker, self.hand_in_allowed = worker, hand_in_allowed

    def start_page(self, clock):
        clock.now = max(clock.now, int(time.time() * 1000))
        return time.monotonic()

    def wait(self, page_start, until_ms):
        from devtools.simulator import HandIn

        pace = self.worker.driver.pace
        try:
            self.worker.sleep(page_start + until_ms / 1000 / pace - time.monotonic(), self.hand_in_allowed)
        except RunOver:
            raise HandIn((time.monotonic() - page_start) * 1000 * pace) from None

    def pause(self, ms):
        from devtools.simulator import HandIn

        try:
            self.worker.sleep(ms / 1000 / self.worker.driver.pace, self.hand_in_allowed)
        except RunOver:
            raise HandIn from None


class LedgerObserver:
    """devtools.simulator.Observer's hooks: every answer's latency into the driver's stats, every acknowledged write
    into its ledger."""

    def __init__(self, driver, hit, worker_id, kind):
        self.driver, self.key, self.kind = driver, (hit.pk, worker_id), kind

    def attempt(self, kind, ms, status, ok):
        self.driver.stats.attempt(kind, ms, status, ok)

    def retry(self, kind):
        self.driver.stats.retries[kind] += 1

    def failure(self, kind, path, status, body):
        self.driver.stats.failure(kind, path, status, body)

    def flushed(self, index, batch_id, n_events):
        self.driver.ledger.add("events", self.key + (batch_id,), (index, n_events))

    def saved(self, index, save_id, n_records):
        self.driver.ledger.add("saves", self.key + (save_id,), (index, self.kind, n_records))

    def submitted(self, partial, completion_code, pages_saved):
        self.driver.ledger.add("submits", self.key, {"partial": partial, "completion_code": completion_code,
                                                     "pages": pages_saved, "kind": self.kind})


class CrowdMember:
    """One person: works whole HITs one after the other at a human pace (devtools.simulator's worker, paced)."""

    def __init__(self, driver, index, profile_name):
        from devtools.simulator import PROFILES

        self.driver, self.index, self.profile_name = driver, index, profile_name
        self.profile = PROFILES[profile_name]
        self.rng = random.Random(f"{driver.seed}:{index}")

    def sleep(self, seconds, hand_in_allowed=True):
        """Sleep like a person works; returns early with RunOver when the run ends (and hand-in is the rule)."""
        driver = self.driver
        end = time.monotonic() + max(0.0, seconds)
        while True:
            left = end - time.monotonic()
            if driver.handing_in() and (hand_in_allowed or driver.stopped_early):
                raise RunOver
            if left <= 0:
                return
            if driver.stopped.is_set():  # finish="complete": the person works on through the end of the run
                time.sleep(min(left, 1.0))
            else:
                driver.stopped.wait(min(left, 1.0))

    def run(self):
        driver = self.driver
        try:
            self.sleep(self.rng.uniform(0, driver.ramp_s))
        except RunOver:
            return
        n = 0
        kinds = ["imagenet", "coco"] if self.index % 2 == 0 else ["coco", "imagenet"]
        while not driver.handing_in() and not driver.no_new_hits():
            kind = kinds[n % 2]
            hits = driver.hits[kind]
            round_ = n // 2
            hit = hits[(self.index + round_) % len(hits)]
            suffix = f"x{round_ // len(hits)}" if round_ >= len(hits) else ""
            worker_id = f"c{driver.seed}-{self.profile_name}-{self.index:04d}{suffix}"
            n += 1
            try:
                self.work_hit(kind, hit, worker_id)
            except Exception:  # noqa: BLE001 - a harness bug must not silently stop the crowd
                driver.count("hits crashed")
                logger.exception("worker %s on HIT %s crashed", worker_id, hit.pk)
            try:
                self.sleep(self.rng.uniform(2, 10) / driver.pace)  # between two HITs
            except RunOver:
                return

    def work_hit(self, kind, hit, worker_id):
        from devtools.simulator import simulate_assignment

        driver = self.driver
        outcome = simulate_assignment(
            driver.transport, driver.batches[kind], hit, driver.truth, worker_id, self.profile, rng=self.rng,
            timing=PacedTime(self, hand_in_allowed=driver.finish == "partial"),
            observer=LedgerObserver(driver, hit, worker_id, kind), retry_for_s=driver.retry_for_s,
        )
        if outcome.n_pages:
            driver.count("hits started")
        if outcome.status == "submitted":
            driver.count("hits submitted" + (" partial" if outcome.partial else ""))
        else:
            driver.count(f"hits {outcome.status}")


class LoadDriver:
    """n_workers simulated workers for `minutes`, each a mostly sleeping thread; see the module docstring."""

    def __init__(self, base_url, hits, n_workers, minutes, pace=1.0, mix=MIX, seed=0, ramp_s=None,
                 finish="partial", retry_for_s=600, timeout_s=60):
        from devtools import simulator

        if finish not in ("partial", "complete"):
            raise ValueError("finish: 'partial' or 'complete'")
        self.base_url = base_url.rstrip("/")
        self.hits = hits
        self.batches = {kind: hits[kind][0].batch for kind in hits}
        self.n_workers, self.seconds, self.pace = n_workers, minutes * 60, pace
        self.seed, self.finish, self.retry_for_s = seed, finish, retry_for_s
        self.transport = simulator.HttpTransport(self.base_url, timeout_s=timeout_s)
        self.ramp_s = min(60.0, self.seconds / 5) if ramp_s is None else ramp_s
        self.truth = simulator.load_ground_truth([hit for kind in hits for hit in hits[kind]])
        from django.db import connections

        connections.close_all()
        self.profiles = simulator.assign_profiles(n_workers, simulator.parse_mix(mix), random.Random(seed))
        self.ledger = Ledger()
        self.stats = Stats()
        self.counters = Counter()
        self._counter_lock = threading.Lock()
        self.stopped = threading.Event()
        self._threads = []
        self._started = self._deadline = None
        self._hand_in = False
        self.stopped_early = False

    def count(self, what):
        with self._counter_lock:
            self.counters[what] += 1

    def no_new_hits(self):
        return self._hand_in or time.monotonic() >= self._deadline

    def handing_in(self):
        """True once the run is over and the rule is to hand in what is saved (or stop_now was called)."""
        if self._hand_in:
            return True
        if self.finish == "partial" and time.monotonic() >= self._deadline:
            self._hand_in = True
            self.stopped.set()
        return self._hand_in

    def start(self):
        self._started = time.monotonic()
        self._deadline = self._started + self.seconds
        self.stats.window = (self._started, self._deadline)

        for index, profile in enumerate(self.profiles):
            worker = CrowdMember(self, index, profile)
            thread = threading.Thread(target=worker.run, name=f"sim-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop_now(self):
        self.stopped_early = True
        self._hand_in = True
        self._deadline = time.monotonic()
        self.stopped.set()

    def wait(self, progress_every_s=30):
        last = time.monotonic()
        for thread in self._threads:
            while thread.is_alive():
                thread.join(timeout=1.0)
                if time.monotonic() - last >= progress_every_s:
                    last = time.monotonic()
                    alive = sum(t.is_alive() for t in self._threads)
                    print(f"  [{last - self._started:6.0f} s] {alive} workers active, {self.ledger.counts()}, "
                          f"{dict(self.counters)}", flush=True)
        self.elapsed_s = time.monotonic() - self._started
        return self

    def run(self):
        return self.start().wait()

    def report(self):
        summary = self.stats.summary()
        lines = [f"crowd: {self.n_workers} simulated workers, {self.seconds / 60:g} min at pace {self.pace:g}, "
                 f"whole run {self.elapsed_s:.0f} s; {dict(self.counters)}",
                 f"acknowledged: {self.ledger.counts()}",
                 f"held load: {summary['held_load']}"]
        for title, table in (("latency of successes inside the run window (held load)", "latency_ok_in_window"),
                             ("latency of every success, hand-in at the end included", "latency_ok")):
            lines.append(title + ":")
            for kind in REQUEST_TYPES:
                p = summary[table][kind]
                if p["n"]:
                    lines.append(f"  {kind:<10} n={p['n']:<7} p50 {p['p50_ms']:>8.1f} ms  p95 {p['p95_ms']:>8.1f} ms"
                                 f"  p99 {p['p99_ms']:>8.1f} ms  max {p['max_ms']:>8.1f} ms")
        lines.append(f"answers per request type: {summary['statuses']}")
        lines.append(f"retries: {summary['retries']}; failures: {summary['failures']}")
        for failure in self.stats.failures[:8]:
            lines.append(f"  failure: {failure}")
        return "\n".join(lines)


# ---------------------------------------------------------------- reconciliation

@dataclass
class Reconciliation:
    ok: bool
    checks: dict
    problems: list

    def as_dict(self):
        return asdict(self)


def reconcile(ledger, timeout_s=120, poll_s=2, out=print):
    """Is everything the server acknowledged stored exactly once, and every submitted assignment reviewed?"""
    from django.db.models import Count

    from annotator.models import Assignment, CocoRecord, EventBatch, ImageNetRecord, PageSubmission, PageItem

    _close_idle_connections()  # the database may have been restarted under us
    problems = []
    checks = {}
    batches = list(BATCH_NAMES.values())
    assignments = {
        (hit, worker): pk for pk, hit, worker in Assignment.objects.filter(hit__batch__name__in=batches)
        .values_list("pk", "hit_id", "worker__external_id")
    }

    def assignment_of(key):
        pk = assignments.get(key)
        if pk is None:
            problems.append(f"no assignment for HIT {key[0]} worker {key[1]}")
        return pk

    # Event batches: each acknowledged batch_id stored once with all its events.
    stored_flushes = {}
    for pk, client_id, n in EventBatch.objects.filter(assignment__hit__batch__name__in=batches).values_list(
            "assignment_id", "client_batch_id", "events"):
        stored_flushes.setdefault((pk, str(client_id)), []).append(len(n))
    lost_flushes = wrong_flushes = 0
    for (hit, worker, batch_id), (_, n_events) in ledger.events.items():
        stored = stored_flushes.get((assignments.get((hit, worker)), batch_id))
        if not stored:
            lost_flushes += 1
            if lost_flushes <= 5:
                problems.append(f"event batch {batch_id} (HIT {hit}, {worker}) acknowledged but not stored")
        elif stored != [n_events]:
            wrong_flushes += 1
            problems.append(f"event batch {batch_id} stored as {stored}, sent {n_events} events")
    checks["event batches acknowledged"] = len(ledger.events)
    checks["event batches lost"] = lost_flushes
    checks["event batches stored differently"] = wrong_flushes
    checks["event batches stored, not acknowledged (client gave up or harness)"] = (
        len(stored_flushes) - (len(ledger.events) - lost_flushes))

    # Page saves: each acknowledged save_id stored once, on its page, with its records.
    saves = {}
    for pk, save_id, page_index, kind in PageSubmission.objects.filter(
            assignment__hit__batch__name__in=batches).values_list(
            "assignment_id", "client_save_id", "page__index", "assignment__hit__batch__task_kind"):
        saves.setdefault((pk, str(save_id)), []).append(page_index)
    lost_saves = 0
    for (hit, worker, save_id), (page_index, _, _) in ledger.saves.items():
        stored = saves.get((assignment_of((hit, worker)), save_id))
        if stored != [page_index]:
            lost_saves += 1
            if lost_saves <= 5:
                problems.append(f"page save {save_id} (HIT {hit}, {worker}, page {page_index}) acknowledged, "
                                f"stored as {stored}")
    checks["page saves acknowledged"] = len(ledger.saves)
    checks["page saves lost or misplaced"] = lost_saves

    # Records per saved page: ImageNet-style = the page's candidates (48), COCO-style = 1; none without a save.
    candidates = dict(PageItem.objects.filter(page__hit__batch__name__in=batches).values("page_id")
                      .annotate(n=Count("id")).values_list("page_id", "n"))
    saved_pages = set(PageSubmission.objects.filter(assignment__hit__batch__name__in=batches)
                      .values_list("assignment_id", "page_id"))
    imagenet = dict(((a, p), n) for a, p, n in ImageNetRecord.objects.filter(
        assignment__hit__batch__name__in=batches).values("assignment_id", "page_id").annotate(n=Count("id"))
        .values_list("assignment_id", "page_id", "n"))
    coco = dict(((a, p), n) for a, p, n in CocoRecord.objects.filter(
        assignment__hit__batch__name__in=batches).values("assignment_id", "page_id").annotate(n=Count("id"))
        .values_list("assignment_id", "page_id", "n"))
    bad_pages = 0
    for (a, p) in saved_pages:
        expected_imagenet = candidates.get(p, 0)
        got = imagenet.get((a, p), 0) if expected_imagenet else coco.get((a, p), 0)
        if got != (expected_imagenet or 1):
            bad_pages += 1
            if bad_pages <= 5:
                problems.append(f"assignment {a} page {p}: {got} records, expected {expected_imagenet or 1}")
    orphans = len((set(imagenet) | set(coco)) - saved_pages)
    checks["saved pages with the wrong record count"] = bad_pages
    checks["records without their page save"] = orphans
    checks["ImageNet-style records"] = sum(imagenet.values())
    checks["COCO-style records"] = sum(coco.values())

    # Unique keys: nothing stored twice anywhere in the campaign.
    duplicates = {
        "event batch (assignment, batch_id)": EventBatch.objects.filter(assignment__hit__batch__name__in=batches)
        .values("assignment", "client_batch_id").annotate(n=Count("id")).filter(n__gt=1).count(),
        "page save (assignment, page)": PageSubmission.objects.filter(assignment__hit__batch__name__in=batches)
        .values("assignment", "page").annotate(n=Count("id")).filter(n__gt=1).count(),
        "page save (assignment, save_id)": PageSubmission.objects.filter(assignment__hit__batch__name__in=batches)
        .values("assignment", "client_save_id").annotate(n=Count("id")).filter(n__gt=1).count(),
        "ImageNet record (assignment, page, image)": ImageNetRecord.objects.filter(
            assignment__hit__batch__name__in=batches).values("assignment", "page", "image")
        .annotate(n=Count("id")).filter(n__gt=1).count(),
        "COCO record (assignment, page)": CocoRecord.objects.filter(assignment__hit__batch__name__in=batches)
        .values("assignment", "page").annotate(n=Count("id")).filter(n__gt=1).count(),
        "assignment (hit, worker)": Assignment.objects.filter(hit__batch__name__in=batches)
        .values("hit", "worker").annotate(n=Count("id")).filter(n__gt=1).count(),
    }
    checks["duplicates"] = duplicates
    if any(duplicates.values()):
        problems.append(f"duplicates: { {k: v for k, v in duplicates.items() if v} }")

    # Submits: every acknowledged submit is SUBMITTED or later, and the automatic review decides it in time.
    submitted = {assignments.get(key) for key in ledger.submits}
    if None in submitted:
        problems.append("a submit was acknowledged for an assignment that is not stored")
        submitted.discard(None)
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    while True:
        states = Counter()
        undecided = []
        for pk, state, source, reviewed_at in Assignment.objects.filter(pk__in=submitted).values_list(
                "pk", "state", "decision_source", "reviewed_at"):
            decided = state in (Assignment.State.APPROVED, Assignment.State.REJECTED)
            states[state] += 1
            if not (decided and source == Assignment.DecisionSource.AUTO and reviewed_at is not None):
                undecided.append((pk, state, source))
        if not undecided or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    checks["submits acknowledged"] = len(ledger.submits)
    checks["submitted assignments by state"] = dict(states)
    checks["submitted, not decided by the automatic review"] = len(undecided)
    checks["waited for review (s)"] = round(time.monotonic() - started, 1)
    if undecided:
        problems.append(f"{len(undecided)} submitted assignments not reviewed after {timeout_s} s, "
                        f"e.g. {undecided[:5]}")
    unsubmitted = Assignment.objects.filter(pk__in=submitted, submitted_at__isnull=True).count()
    if unsubmitted:
        problems.append(f"{unsubmitted} acknowledged submits have no submitted_at")
    ok = not problems and not lost_flushes and not wrong_flushes and not lost_saves and not bad_pages and not orphans
    result = Reconciliation(ok=ok, checks=checks, problems=problems)
    if out:
        out("reconciliation: " + ("OK, nothing lost, nothing duplicated, every submit reviewed" if ok else "FAILED"))
        for name, value in checks.items():
            out(f"  {name}: {value}")
        for problem in problems:
            out(f"  PROBLEM: {problem}")
    _close_idle_connections()
    return result


def _close_idle_connections():
    """Close this thread's database connections, except one inside a transaction (a test's)."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


# ---------------------------------------------------------------- command lines

# The load a fault script runs under unless told otherwise.
FAULT_LOAD = {"workers": 40, "minutes": 2.0, "pace": 5.0}


def argument_parser(doc, name, **defaults):
    """A campaign script's command line: its docstring as help, the stack's and the crowd's options, its defaults."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(parser, name)
    parser.set_defaults(**defaults)
    return parser


def add_stack_arguments(parser, name="campaign"):
    """The options every campaign script shares (database, ports, server and crowd sizes)."""
    parser.add_argument("--name", default=name, help="prefix of temp folders, logs and worker ids")
    parser.add_argument("--database-url", default=f"postgres://postgres@127.0.0.1:5432/luab_{name}_campaign",
                        help="the campaign's own database (dropped and re-created)")
    parser.add_argument("--redis-port", type=int, default=16381, help="the private redis-server's port")
    parser.add_argument("--postgres-port", type=int, default=55433, help="the private PostgreSQL's port")
    parser.add_argument("--data-dir", default="/tmp/luab-campaign-data", help="generated demo images (reused)")
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument("--gunicorn-threads", type=int, default=8)
    parser.add_argument("--celery-concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=50, help="simulated workers")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long HITs are started")
    parser.add_argument("--pace", type=float, default=1.0, help="human clock speed-up (1 = real time)")
    parser.add_argument("--finish", choices=("partial", "complete"), default="partial",
                        help="at the end, hand in what is saved (partial) or finish the HIT (complete)")
    parser.add_argument("--review-timeout", type=float, default=180, help="seconds to wait for reviews")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hits-per-kind", type=int, default=None,
                        help="copy the demo HITs until each batch has this many (default: the few the demo sets make)")
    return parser


def stack_from_args(args, own_postgres=False, env=None):
    return Stack(name=args.name, database_url=args.database_url, redis_port=args.redis_port,
                 own_postgres=own_postgres, postgres_port=args.postgres_port,
                 gunicorn_workers=args.gunicorn_workers, gunicorn_threads=args.gunicorn_threads,
                 celery_concurrency=args.celery_concurrency, env=env)


def driver_from_args(args, stack, hits):
    return LoadDriver(stack.base_url, hits, n_workers=args.workers, minutes=args.minutes, pace=args.pace,
                      seed=args.seed, finish=args.finish)


def run_campaign(args, during=None, own_postgres=False, title="campaign", env=None):
    """Set up, prepare, start, drive the crowd, call during(stack, driver) while it runs, report, reconcile.

    during runs in this thread while the simulated workers work (driver.seconds, driver.ramp_s tell when);
    what it returns is printed. Returns (driver, Reconciliation); a script exits with 0 if result.ok else 1.
    """
    configure_logging()
    print(f"{title}: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start; gunicorn "
          f"{args.gunicorn_workers} gthread workers x {args.gunicorn_threads} threads, 1 Celery worker "
          f"(concurrency {args.celery_concurrency}); {args.workers} simulated workers for {args.minutes:g} min at "
          f"pace {args.pace:g}; load generator on the same machine", flush=True)
    with stack_from_args(args, own_postgres=own_postgres, env=env) as stack:
        started = time.monotonic()
        stack.setup()
        hits = prepare_campaign(args.data_dir, hits_per_kind=args.hits_per_kind)
        print(f"prepared {len(hits['imagenet'])} ImageNet-style and {len(hits['coco'])} COCO-style HITs in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        stack.start()
        driver = driver_from_args(args, stack, hits)
        cpu_before = stack.cpu_seconds()
        driver.start()
        if during is not None:
            try:
                outcome = during(stack, driver)
            except Exception:
                driver.stop_now()
                driver.wait()
                raise
            if outcome is not None:
                print(f"{title}: {outcome}", flush=True)
        driver.wait()
        cpu = {part: round(seconds - cpu_before.get(part, 0.0), 1) for part, seconds in stack.cpu_seconds().items()}
        print(driver.report(), flush=True)
        print(f"CPU seconds during the run (of {2 * driver.elapsed_s:.0f} on 2 cores; killed processes not "
              f"counted): {cpu}; load average {os.getloadavg()[0]:.1f} at the end", flush=True)
        result = reconcile(driver.ledger, timeout_s=args.review_timeout)
    return driver, result


def at_intervals(driver, times, act):
    """For a fault: after the crowd's ramp, call act() `times` times spread evenly over the rest of the run."""
    interval = (driver.seconds - driver.ramp_s) / (times + 1)
    time.sleep(driver.ramp_s)
    for _ in range(times):
        time.sleep(interval)
        act()


def print_failed_attempts(driver, fault):
    """How many requests of each type got no answer or a 5xx (and were retried) while the fault happened."""
    errors = {kind: sum(n for status, n in statuses.items() if status == "error" or int(status) >= 500)
              for kind, statuses in driver.stats.summary()["statuses"].items()}
    print(f"requests that saw {fault} (no answer or 5xx, then retried): {errors}")


def configure_logging():
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("campaign").setLevel(logging.WARNING)
