"""`python manage.py message_workers BATCH --subject S --message M [--worker ID ...]`: message a batch's workers."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Batch, Worker
from annotator.providers.prolific import ProlificError
from annotator.providers.services import notify_workers


class Command(BaseCommand):
    help = ("Message the batch's workers through its market (Prolific: bulk messages per study; MTurk: NotifyWorkers; "
            "link: kept in the event log for staff to send). Once per subject, message and workers.")

    def add_arguments(self, parser):
        parser.add_argument("batch", help="batch name")
        parser.add_argument("--subject", required=True)
        parser.add_argument("--message", required=True)
        parser.add_argument("--worker", action="append", default=[], metavar="MARKET_ID",
                            help="a worker's market id (repeat it); default: everyone who worked on the batch")

    def handle(self, *args, **options):
        batch = Batch.objects.filter(name=options["batch"]).first()
        if batch is None:
            raise CommandError(f"batch {options['batch']!r} does not exist")
        workers = Worker.objects.filter(provider=batch.provider, assignments__hit__batch=batch).distinct()
        if options["worker"]:
            workers = workers.filter(external_id__in=options["worker"])
            missing = set(options["worker"]) - set(workers.values_list("external_id", flat=True))
            if missing:
                raise CommandError(f"--worker: no work on batch {batch.name} from {', '.join(sorted(missing))}")
        worker_ids = sorted(workers.values_list("pk", flat=True))
        if not worker_ids:
            raise CommandError(f"batch {batch.name} has no workers to message")
        try:
            failures = notify_workers(batch, worker_ids, options["subject"], options["message"])
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        except ProlificError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"batch {batch.name}: {len(worker_ids) - len(failures)} of {len(worker_ids)} workers reached")
        for worker_id, why in sorted(failures.items()):
            self.stdout.write(f"  not reached: {worker_id}: {why}")
