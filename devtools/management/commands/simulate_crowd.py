"""`python manage.py simulate_crowd BATCH --server URL --workers N --mix diligent=0.7,...`: a simulated crowd."""
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.models import Batch
from devtools import simulator


def share(text):
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Simulated workers (diligent, sloppy, spammer, centre) open the batch's task URLs and work the HITs "
        "through the real worker API, leaving realistic byproducts; prints a summary per profile."
    )

    def add_arguments(self, parser):
        parser.add_argument("batch", help="batch name")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--server", help="base URL of a running server, e.g. http://127.0.0.1:8000")
        where.add_argument("--in-process", action="store_true",
                           help="call the API through Django's test client instead of a server")
        parser.add_argument("--workers", type=int, default=10, help="number of simulated workers")
        parser.add_argument("--mix", default="diligent=0.7,sloppy=0.15,spammer=0.1,centre=0.05",
                            help="share of each worker profile")
        parser.add_argument("--hits", type=int, help="work at most this many untaken HITs")
        parser.add_argument("--fill", type=share,
                            help="work untaken HITs until this share of the batch has work (0.5 or 50%%)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--concurrency", type=int, default=4, help="workers working at the same time")
        parser.add_argument("--wait-for-reviews", type=float, default=0, metavar="SECONDS",
                            help="then wait up to this long until a Celery worker has decided every submission")

    def handle(self, *args, **options):
        batch = Batch.objects.filter(name=options["batch"]).select_related("dataset").first()
        if batch is None:
            raise CommandError(f"batch {options['batch']!r} does not exist")
        if batch.status == Batch.Status.DRAFT:
            raise CommandError(f"batch {batch.name} is a draft, which takes no workers: publish it first "
                               f"(manage.py publish {batch.name})")
        try:
            mix = simulator.parse_mix(options["mix"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        if options["workers"] < 1:
            raise CommandError("--workers: at least one worker")
        hits = simulator.hits_to_work(batch, limit=options["hits"], fill=options["fill"])
        if not hits:
            self.stdout.write(f"batch {batch.name}: no untaken HITs to work (already filled as asked)")
            return
        if options["in_process"]:
            transport = simulator.InProcessTransport()
            concurrency = 1  # one in-process client at a time keeps SQLite free of lock waits
        else:
            transport = simulator.HttpTransport(options["server"])
            concurrency = options["concurrency"]
        run = simulator.run_crowd(
            batch, hits, transport=transport, n_workers=options["workers"], mix=mix, seed=options["seed"],
            concurrency=concurrency, show_progress=options["verbosity"] > 0,
        )
        if options["wait_for_reviews"] > 0:
            self._wait_for_reviews(run, options["wait_for_reviews"], options["verbosity"] > 0)
        self._summary(batch, run)

    def _wait_for_reviews(self, run, timeout, show_progress):
        """Poll until no assignment of the run is waiting for its automatic review (done by a Celery worker)."""
        deadline = time.monotonic() + timeout
        with tqdm(desc="automatic review (Celery worker)", unit="HIT", disable=not show_progress) as bar:
            while True:
                decisions = simulator.decisions_by_profile(run).values()
                waiting = sum(states["submitted"] for states in decisions)
                bar.total = sum(states.total() for states in decisions)
                bar.n = bar.total - waiting
                bar.refresh()
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    self.stderr.write(f"{waiting} submissions still wait for their review after {timeout:.0f} s: "
                                      "is a Celery worker running (celery -A config worker)?")
                    return
                time.sleep(0.5)

    def _summary(self, batch, run):
        latency = run.latency_percentiles()
        self.stdout.write(
            f"batch {batch.name}: {len(run.outcomes)} HITs worked in {run.elapsed_s:.1f} s, "
            f"{latency['requests']} requests ({latency['requests'] / max(run.elapsed_s, 1e-9):.1f}/s)"
            + (f", p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms" if latency["requests"] else "")
        )
        decisions = simulator.decisions_by_profile(run)
        for profile, counts in sorted(run.by_profile().items()):
            states = decisions.get(profile, {})
            self.stdout.write(
                f"  {profile:<9} submitted {counts['submitted']:>4}  refused {counts['refused']:>3}  "
                f"failed {counts['failed']:>3}  pages {counts['pages']:>5}  events {counts['events']:>7}  "
                f"approved {states.get('approved', 0):>4}  rejected {states.get('rejected', 0):>4}  "
                f"awaiting review {states.get('submitted', 0):>4}"
            )
        for outcome in run.outcomes:
            if outcome.status == "failed":
                self.stderr.write(f"  HIT {outcome.hit_id} ({outcome.worker}): {outcome.error}")
