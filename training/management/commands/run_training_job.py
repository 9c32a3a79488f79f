"""Create a training job and run it in this process (no Celery worker needed), or with --queue hand it to a Celery
worker (the gpu queue) and follow it here; either way with a progress bar.

The job goes through the same service as a queued one (snapshot, engine, artifacts, model version), so it shows
in the admin and the API like any other; --promote then makes its model the dataset's active one.
"""
import json
import socket

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.models import Dataset
from training.services import registry, training_jobs
from training.management.follow import follow
from training.ml.recipes import RECIPES
from training.models import JobStatus, ModelVersion, TrainingJob


class Command(BaseCommand):
    help = "Create a training job and run it here (inline) or on a Celery worker (--queue); optionally promote it."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset name.")
        parser.add_argument("--batch", action="append", dest="batches", default=[],
                            help="Train on this batch's approved work (repeatable; default: every batch).")
        parser.add_argument("--config", default="{}", help='TrainConfig options as JSON, e.g. {"epochs": 3}.')
        parser.add_argument("--recipe", choices=sorted(RECIPES),
                            help="Start from this named set of options (training/ml/recipes.py); --config overrides.")
        parser.add_argument("--promote", action="store_true", help="Make the new model the dataset's active one.")
        parser.add_argument("--queue", action="store_true",
                            help="Queue the job for a Celery worker (gpu queue) and follow its progress here.")
        parser.add_argument("--unless-active", action="store_true",
                            help="Do nothing when the dataset already has an active model (for idempotent scripts).")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"--dataset: no dataset named {options['dataset']!r}") from None
        if options["unless_active"] and dataset.active_model_version:
            self.stdout.write(
                f"{dataset.name} already has the active model {dataset.active_model_version}; nothing to do"
            )
            return
        batches = list(dataset.batches.filter(name__in=options["batches"]))
        missing = sorted(set(options["batches"]) - {batch.name for batch in batches})
        if missing:
            raise CommandError(f"--batch: {', '.join(missing)} not in dataset {dataset.name}")
        try:
            config = {**RECIPES.get(options["recipe"], {}), **json.loads(options["config"])}
            job = training_jobs.create_training_job(
                dataset=dataset, batches=batches, config=config, source=TrainingJob.Source.COMMAND,
                enqueue=options["queue"],
            )
        except json.JSONDecodeError as error:
            raise CommandError(f"--config: not JSON ({error})") from None
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(m)}" for field, m in error.message_dict.items()))

        where = "on a Celery worker" if options["queue"] else "here"
        with tqdm(desc=f"training job {job.pk} ({where})", unit="step", disable=options["verbosity"] == 0) as bar:
            def show(progress):
                if not {"steps", "epochs", "epoch", "step"} <= progress.keys():
                    return  # queued, or preparing its data: no steps yet
                bar.total = progress["steps"] * progress["epochs"]
                bar.n = (progress["epoch"] - 1) * progress["steps"] + progress["step"]
                if "loss" in progress:
                    bar.set_postfix(epoch=progress["epoch"], loss=f"{progress['loss']:.3f}")
                bar.refresh()

            if options["queue"]:
                follow(job, show)
            else:
                training_jobs.run_training_job(job.pk, task_id=job.celery_task_id, hostname=socket.gethostname(),
                                          progress_listener=show)
        job.refresh_from_db()
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"training job {job.pk} {job.status}: {job.error}")
        version = ModelVersion.objects.get(job=job)
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in job.metrics.items() if isinstance(v, float))
        self.stdout.write(f"training job {job.pk} succeeded: model version {version.name} ({metrics})")
        if options["promote"]:
            registry.promote_model_version(version)
            self.stdout.write(self.style.SUCCESS(f"{version.name} is now the active model of {dataset.name}"))
