"""Re-run the rejection rules on a batch: a dry run prints the decisions, --apply makes them."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Batch
from annotator.review import services


class Command(BaseCommand):
    help = "Re-run the paper's rejection rules on every submitted or decided assignment of a batch."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="Batch name.")
        parser.add_argument("--apply", action="store_true", help="Apply the decisions (default: dry run).")

    def handle(self, *args, **options):
        try:
            batch = Batch.objects.get(name=options["batch"])
        except Batch.DoesNotExist:
            raise CommandError(f"batch: no batch named {options['batch']!r}") from None
        try:
            result = services.review_batch(batch, apply=options["apply"], show_progress=True)
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()))
        for assignment, decision in result.decisions:
            verdict = "approve" if decision.approve else "reject"
            why = "; ".join(reason.message for reason in decision.reasons) or "all rules passed"
            admin = " (admin decision kept)" if assignment.decision_source == "admin" else ""
            self.stdout.write(f"assignment {assignment.pk} HIT {assignment.hit.index} [{assignment.state}] "
                              f"-> {verdict}{admin}: {why}")
        action = "changed" if options["apply"] else "would change"
        self.stdout.write(self.style.SUCCESS(
            f"{batch.name}: {result.reviewed} reviewed, {result.approved} approve, {result.rejected} reject "
            f"(reject rate {result.rejection_rate:.1%}); {action} {result.changed}"
        ))
