"""Fault: slow-body clients (slowloris) against gunicorn as configured in config/gunicorn.conf.py.

    .venv/bin/python benchmarks/faults/slow_body.py [--slow 8] [--workers 1 --threads 4] [--read-timeout 5]
        [--worker-class config.gunicorn_worker.DeadlineThreadWorker | gthread | sync]

Starts gunicorn on a free port against its own PostgreSQL database, then opens --slow connections that each send
the headers of a worker API event flush (a real assignment token, Content-Length 4000) and then one byte of body a
second, reconnecting as soon as the server drops them (a persistent attacker); with --slow at least the number of
threads, they could hold every thread. Meanwhile an honest worker asks for its assignment twice a second.
Pass (exit status 0): every honest request is answered 200 within --read-timeout + 3 s, and every slow connection
is dropped within --read-timeout + 3 s of opening. Prints the honest latencies and how the slow ones ended.
With `--worker-class gthread` (gunicorn's plain threaded worker) the honest requests wait or time out: that is
the hole the deadline worker closes. The figures are from a shared 2-core machine: noisy.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

DEADLINE_WORKER = "config.gunicorn_worker.DeadlineThreadWorker"
BODY_BYTES = 4000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/luab_fault_slow_body")
    parser.add_argument("--slow", type=int, default=8, help="slow-body connections held open at once")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--read-timeout", type=float, default=5.0, help="REQUEST_READ_TIMEOUT given to gunicorn")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the attack and the honest load run")
    parser.add_argument("--worker-class", default=DEADLINE_WORKER)
    return parser.parse_args(argv)


def make_tokens(n):
    """n assignment tokens of one published HIT (Django must be set up against the server's database)."""
    from annotator.models import Batch, Dataset, Hit, TaskKind
    from annotator.worker.services import accept_assignment
    from annotator.worker.tokens import make_token

    dataset, _ = Dataset.objects.get_or_create(name="slow-body", defaults={"kind": TaskKind.IMAGENET})
    batch, _ = Batch.objects.get_or_create(
        name="slow-body", defaults={"dataset": dataset, "task_kind": TaskKind.IMAGENET,
                                    "status": Batch.Status.PUBLISHED},
    )
    hit, _ = Hit.objects.get_or_create(batch=batch, index=0, defaults={"max_assignments": 10_000,
                                                                       "status": Hit.Status.PUBLISHED})
    return [make_token(accept_assignment(hit, f"SLOW{i}", f"A-SLOW{i}")) for i in range(n)]


def start_gunicorn(port, database_url, args, secret_key):
    env = {
        **os.environ, "DATABASE_URL": database_url, "DJANGO_SECRET_KEY": secret_key, "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING",
        "WORKER_API_RATE": "none", "WORKER_BAD_TOKEN_RATE": "none", "WORKER_ENTRY_RATE": "none",
        "REQUEST_READ_TIMEOUT": str(args.read_timeout), "GUNICORN_ACCESS_LOG": "/dev/null",
    }
    command = [
        str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "config/gunicorn.conf.py"), "config.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
        "--worker-class", args.worker_class, "--log-level", "warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/worker/assignment", timeout=5)
            return server
        except requests.RequestException:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited with {server.returncode}")
            time.sleep(0.3)
    stop(server)
    raise SystemExit("gunicorn did not answer within 60 s")


def stop(server):
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def slow_client(port, token, until, ends, stop_event):
    """Trickle a body a byte a second; when dropped, note how long the connection lived and open another."""
    head = (
        "POST /api/worker/pages/0/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    while time.monotonic() < until and not stop_event.is_set():
        opened = time.monotonic()
        answer = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head)
                sock.settimeout(0.01)
                for _ in range(BODY_BYTES):
                    if time.monotonic() >= until or stop_event.is_set():
                        ends.append(("still open at the end", time.monotonic() - opened, answer[:12]))
                        return
                    try:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise ConnectionResetError("closed by the server")
                        answer += chunk
                    except TimeoutError:
                        pass
                    sock.sendall(b" ")
                    time.sleep(1.0)
                ends.append(("sent the whole body", time.monotonic() - opened, answer[:12]))
        except OSError:
            ends.append(("dropped", time.monotonic() - opened, answer[:12]))


def honest_client(port, token, until, latencies, failures, read_timeout):
    session = requests.Session()
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            response = session.get(f"http://127.0.0.1:{port}/api/worker/assignment",
                                   headers={"Authorization": f"Bearer {token}"}, timeout=read_timeout + 10)
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}")
        except requests.RequestException as error:
            failures.append(type(error).__name__)
        latencies.append(time.monotonic() - started)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))


def attack(port, tokens, slow, seconds, read_timeout):
    """Run the slow clients and the honest one; returns the figures and whether the server held up."""
    until = time.monotonic() + seconds
    ends, latencies, failures, stop_event = [], [], [], threading.Event()
    slow_threads = [
        threading.Thread(target=slow_client, args=(port, tokens[1 + i % (len(tokens) - 1)], until, ends, stop_event),
                         daemon=True)
        for i in range(slow)
    ]
    for thread in slow_threads:
        thread.start()
    time.sleep(1.0)  # the slow ones have their threads now
    honest_client(port, tokens[0], until, latencies, failures, read_timeout)
    stop_event.set()
    for thread in slow_threads:
        thread.join(timeout=read_timeout + 15)
    limit = read_timeout + 3
    dropped = [lived for how, lived, _ in ends if how == "dropped"]
    result = {
        "honest_requests": len(latencies),
        "honest_failures": failures,
        "honest_p50_s": statistics.median(latencies) if latencies else None,
        "honest_max_s": max(latencies) if latencies else None,
        "slow_connections": len(ends),
        "slow_dropped": len(dropped),
        "slow_longest_s": max((lived for _, lived, _ in ends), default=None),
        "slow_not_dropped": [(how, round(lived, 1)) for how, lived, _ in ends if how != "dropped"],
        "slow_answers": sorted({answer.decode("latin-1") for *_, answer in ends if answer}),
    }
    # A connection still open when the run ended counts against the server only if it had lived past the limit.
    held = [lived for how, lived, _ in ends if how != "dropped" and lived > limit]
    result["passed"] = (
        bool(latencies) and not failures and result["honest_max_s"] <= limit
        and bool(dropped) and max(dropped) <= limit and not held
    )
    return result


def main(argv=None):
    args = parse_args(argv)
    from benchmarks.support import fresh_database, free_port, setup_django

    secret_key = "slow-body-fault-only-" + "k" * 40
    fresh_database(args.database_url)
    setup_django(args.database_url, DJANGO_SECRET_KEY=secret_key)
    tokens = make_tokens(args.slow + 1)
    port = free_port()
    server = start_gunicorn(port, args.database_url, args, secret_key)
    print(f"gunicorn {args.worker_class}: {args.workers} worker(s) x {args.threads} threads, REQUEST_READ_TIMEOUT "
          f"{args.read_timeout:g} s; {args.slow} slow-body clients (1 byte/s, reconnecting) for {args.seconds:g} s",
          flush=True)
    try:
        result = attack(port, tokens, args.slow, args.seconds, args.read_timeout)
    finally:
        stop(server)
    for key, value in result.items():
        print(f"  {key}: {round(value, 2) if isinstance(value, float) else value}")
    print("PASS" if result["passed"] else "FAIL: honest requests were held up or slow bodies were not cut off")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
