"""What the benchmarks share: their own PostgreSQL database, Django set up against it, a free local port."""
import os
import socket
import time
from urllib.parse import urlparse

# The paper's ImageNet-style HIT: 10 pages of 48 candidates, 36 of them of the page's class.
PAGES_PER_HIT, ITEMS_PER_PAGE, IN_CLASS_PER_PAGE = 10, 48, 36
INSERT_CHUNK = 5000  # rows per bulk_create where a benchmark writes its rows directly


def fresh_database(database_url, reuse=False):
    """Create the benchmark's own database, dropping an old one unless it is to be reused; True when it is new."""
    import psycopg

    url = urlparse(database_url)
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return True


def setup_django(database_url, migrate=True, **environment):
    """Point Django at database_url (plus any extra environment variables) and migrate it."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.update(environment)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_DEVTOOLS", "true")  # the demo data and the simulated crowd's commands
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def dataset_with_classes(name, n_classes, kind="imagenet"):
    """(dataset, categories): a dataset row with n_classes categories (keys n00000000... for ImageNet-style ones,
    COCO ids 1... otherwise), for the benchmarks that write their rows directly."""
    from annotator import models

    dataset = models.Dataset.objects.create(name=name, kind=kind)
    categories = models.Category.objects.bulk_create(
        models.Category(dataset=dataset, key=f"n{index:08d}" if kind == "imagenet" else str(index + 1), index=index,
                        name=f"class {index}")
        for index in range(n_classes)
    )
    return dataset, categories


def wait_until(check, timeout_s, poll_s=1.0):
    """check()'s first true value, polled every poll_s for up to timeout_s; None when it never came."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    return None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_record(settings):
    """What every results JSON starts with: the commit, the machine, its load average, the settings."""
    import platform
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=root).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=root).stdout.strip()
    return {
        "commit": commit + ("+uncommitted changes" if dirty else ""),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_start": round(os.getloadavg()[0], 2)},
        "settings": settings,
    }
