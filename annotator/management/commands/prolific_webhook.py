"""`python manage.py prolific_webhook --workspace ID`: subscribe our webhook to Prolific's submission.status.change."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from annotator.providers.prolific import ProlificError, subscribe_webhook


class Command(BaseCommand):
    help = ("Create the workspace's webhook secret, subscribe our webhook URL to submission.status.change and confirm "
            "the subscription (Prolific's documented three steps); prints the secret to set as "
            "PROLIFIC_WEBHOOK_SECRET.")

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="the Prolific workspace id")
        parser.add_argument("--target-url", help="where Prolific calls (default: PUBLIC_BASE_URL + the webhook path)")

    def handle(self, *args, **options):
        target = options["target_url"] or settings.PUBLIC_BASE_URL.rstrip("/") + reverse("prolific-webhook")
        try:
            subscription_id, secret = subscribe_webhook(options["workspace"], target)
        except ProlificError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"subscription {subscription_id} confirmed: Prolific calls {target}")
        self.stdout.write(f"PROLIFIC_WEBHOOK_SECRET={secret}")
