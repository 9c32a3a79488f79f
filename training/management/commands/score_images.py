"""Run a model version over its dataset (here, or on a Celery worker with --queue): uncertainty per image, agreement
per worker."""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.models import Dataset, ImageScore
from training import steering
from training.services import inference_jobs
from training.management.follow import follow
from training.models import JobStatus, ModelVersion


class Command(BaseCommand):
    help = "Score a dataset's train images with a model version (default: the active one), here or on a worker."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset name.")
        parser.add_argument("--model-version", help="Model version name (default: the dataset's active model).")
        parser.add_argument("--uncertainty", choices=steering.UNCERTAINTY_MEASURES, default="entropy")
        parser.add_argument("--queue", action="store_true",
                            help="Queue the inference job for a Celery worker (gpu queue) and follow it here.")
        parser.add_argument("--unless-scored", action="store_true",
                            help="Do nothing when the version has already scored the dataset (idempotent scripts).")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"--dataset: no dataset named {options['dataset']!r}") from None
        name = options["model_version"] or dataset.active_model_version
        if not name:
            raise CommandError(f"--model-version: dataset {dataset.name} has no active model; name a version")
        version = ModelVersion.objects.filter(dataset=dataset, name=name).first()
        if version is None:
            raise CommandError(f"--model-version: no model version {name!r} of dataset {dataset.name}")
        if options["unless_scored"] and ImageScore.objects.filter(model_version=name).exists():
            self.stdout.write(f"{name} has already scored {dataset.name}; nothing to do")
            return
        job = inference_jobs.create_inference_job(version, uncertainty=options["uncertainty"], enqueue=options["queue"])
        with tqdm(desc=f"scoring with {name}", unit="image", disable=options["verbosity"] == 0) as bar:
            def show(progress):
                if "images_total" in progress:
                    bar.total = progress["images_total"]
                    bar.n = progress["images_done"]
                    bar.refresh()

            if options["queue"]:
                follow(job, show)
            else:
                inference_jobs.run_inference_job(job.pk, task_id=job.celery_task_id, progress_listener=show)
        job.refresh_from_db()
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"inference job {job.pk} {job.status}: {job.error}")
        self.stdout.write(self.style.SUCCESS(f"inference job {job.pk}: {job.summary}"))
