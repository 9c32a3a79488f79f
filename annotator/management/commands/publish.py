"""`manage.py publish BATCH [--provider link|mturk|prolific] [--params prolific]`: put a batch's HITs on a market."""
import re

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Batch, Provider
from annotator.providers.link import PARAM_PRESETS, resolve_params
from annotator.providers.prolific import ProlificError
from annotator.providers.services import publish_batch


class Command(BaseCommand):
    help = ("Publish a batch's HITs. link: prints one task URL per line; mturk: one HIT id per line; prolific: one "
            "study id per line.")

    def add_arguments(self, parser):
        parser.add_argument("batch", help="batch name")
        parser.add_argument("--provider", choices=[p.value for p in Provider], help="switch the batch's provider")
        parser.add_argument("--params", choices=sorted(PARAM_PRESETS),
                            help="link: query parameter names preset (prolific: PROLIFIC_PID, STUDY_ID, SESSION_ID)")
        parser.add_argument("--completion-url", help="link: where the worker is sent after submitting")

    def handle(self, *args, **options):
        batch = Batch.objects.filter(name=options["batch"]).first()
        if batch is None:
            raise CommandError(f"batch {options['batch']!r} does not exist")
        try:
            self._configure(batch, options)
            references = publish_batch(batch, show_progress=options["verbosity"] > 0)
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        except ProlificError as error:
            raise CommandError(str(error)) from None
        if batch.provider == Provider.LINK and options["verbosity"] > 0:
            # Templates, not links to click: say so where a person reads it, and keep stdout to the lines themselves.
            placeholders = sorted(set(re.findall(r"\{[^&]*\}", references[min(references)]))) if references else []
            self.stderr.write(f"Task URL templates of {batch.name}, one per HIT: the market replaces "
                              f"{' and '.join(placeholders)} with each worker's own values.")
        for index in sorted(references):
            self.stdout.write(references[index])

    def _configure(self, batch, options):
        changed = []
        if options["provider"] and options["provider"] != batch.provider:
            if batch.hits.exclude(status="pending").exists():
                raise ValidationError({"provider": f"batch {batch.name} is already published on {batch.provider}"})
            batch.provider = options["provider"]
            changed.append("provider")
        if options["params"]:
            batch.provider_config = {**batch.provider_config, "params": PARAM_PRESETS[options["params"]]}
            changed.append("provider_config")
        if options["completion_url"]:
            batch.provider_config = {**batch.provider_config, "completion_url": options["completion_url"]}
            changed.append("provider_config")
        if batch.provider == Provider.LINK:
            resolve_params(batch.provider_config)
        if changed:
            batch.save(update_fields=sorted(set(changed)))
