import json
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from training.manifest_builder import ICON_SEMANTICS, ManifestBuildError, build_manifest, dataset_by_name
from training.ml.engine import TrainConfig, run
from training.ml.models import METHODS
from training.ml.wsol import CAM_SOURCES


class Command(BaseCommand):
    help = ("Snapshot a dataset's approved byproducts into a manifest and train a timm model on it "
            "(baseline, luab, attentive, patch or scl) in this process; resumes from --out's last checkpoint.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset name.")
        parser.add_argument("--batch", action="append", dest="batches", default=[],
                            help="Batch whose approved work gives the point targets (repeatable; default: all).")
        parser.add_argument("--model", default="resnet18", help="timm model name (no pretrained weights).")
        parser.add_argument("--method", choices=METHODS, default="luab")
        parser.add_argument("--epochs", type=int, default=10)
        parser.add_argument("--lambda", type=float, dest="lambda_point", default=None,
                            help="Point-loss weight (default: 10 ImageNet-style; COCO 5 small / 50 large backbones).")
        parser.add_argument("--batch-size", type=int, default=64, help="Images per step (per process).")
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--img-size", type=int, default=224)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes.")
        parser.add_argument("--decode", choices=["pil", "device"], default="pil",
                            help="Decode JPEGs in the loader workers (pil) or batched on the device.")
        parser.add_argument("--cam", choices=CAM_SOURCES, default="auto",
                            help="Map scored by the WSOL metrics (MaxBoxAccV2, PxAP) after the last epoch: the "
                                 "method's own (auto), the class activation map (classifier) or attentive "
                                 "pooling's map (attention).")
        parser.add_argument("--icons", choices=ICON_SEMANTICS, default="replay",
                            help="COCO-style: final icon positions after replay, or the adds only.")
        parser.add_argument("--option", action="append", default=[], metavar="NAME=JSON",
                            help="Any other TrainConfig field, value as JSON, e.g. --option point_loss=mse "
                                 "(repeatable).")
        parser.add_argument("--out", help="Run folder: checkpoint.pt, config.json, metrics.jsonl (not with --async).")
        parser.add_argument("--async", action="store_true", dest="run_async",
                            help="Queue a training job for a Celery worker on the gpu queue instead of training here.")

    def handle(self, *args, **options):
        if options["run_async"]:
            return self.queue_job(options)
        if not options["out"]:
            raise CommandError("--out: required (the run folder), unless the job is queued with --async")
        try:
            dataset = dataset_by_name(options["dataset"])
            batches = None
            if options["batches"]:
                batches = list(dataset.batches.filter(name__in=options["batches"]))
                missing = sorted(set(options["batches"]) - {batch.name for batch in batches})
                if missing:
                    raise ManifestBuildError(f"--batch: {', '.join(missing)} not in dataset {dataset.name}")
            config = TrainConfig.from_dict(dict(
                manifest_path="", out_dir=options["out"], model=options["model"],
                method=options["method"], epochs=options["epochs"], lambda_point=options["lambda_point"],
                batch_size=options["batch_size"], lr=options["lr"], img_size=options["img_size"],
                seed=options["seed"], device=options["device"], workers=options["workers"],
                decode=options["decode"], cam=options["cam"], **parse_options(options["option"]),
            ))
            config.manifest_path = str(build_manifest(
                dataset, batches, icons=options["icons"], pseudo_label_threshold=config.pseudo_label_threshold,
                single_label=config.method == "scl",
            ))
        except (ManifestBuildError, ValueError, TypeError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"manifest {config.manifest_path}")
        with tqdm(desc=f"{config.method} {config.model}", unit="step", disable=options["verbosity"] == 0) as bar:
            def on_progress(progress):
                bar.total = progress["steps"] * progress["epochs"]
                bar.n = (progress["epoch"] - 1) * progress["steps"] + progress["step"]
                bar.set_postfix(epoch=progress["epoch"], loss=f"{progress['loss']:.3f}",
                                img_s=f"{progress['images_per_s']:.0f}")
                bar.refresh()

            interrupted = threading.Event()  # Ctrl-C: save a checkpoint and stop; running the command again resumes
            in_main_thread = threading.current_thread() is threading.main_thread()
            if in_main_thread:
                previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
            try:
                result = run(config, on_progress=on_progress, should_stop=interrupted.is_set)
            finally:
                if in_main_thread:
                    signal.signal(signal.SIGINT, previous_handler)
        numbers = {name: value for name, value in result["metrics"].items() if not isinstance(value, dict)}
        self.stdout.write(json.dumps(numbers, indent=2))  # the threshold curves are in the run's metrics.jsonl
        self.stdout.write(self.style.SUCCESS(f"{result['status']}: {result['checkpoint']}"))

    def queue_job(self, options):
        """--async: a TrainingJob (source "command") that a worker on the gpu queue runs; progress in the admin/API."""
        from django.core.exceptions import ValidationError

        from training.models import TrainingJob
        from training.services.training_jobs import create_training_job

        if options["out"]:
            raise CommandError("--out: a queued job works in TRAINING_WORK_DIR/<job id>; leave --out out with --async")
        if options["icons"] != "replay":
            raise CommandError("--icons: queued jobs train on replayed icon positions; run adds_only in-process")
        try:
            dataset = dataset_by_name(options["dataset"])
            batches = list(dataset.batches.filter(name__in=options["batches"]))
            missing = sorted(set(options["batches"]) - {batch.name for batch in batches})
            if missing:
                raise ManifestBuildError(f"--batch: {', '.join(missing)} not in dataset {dataset.name}")
            config = {name: options[name] for name in (
                "model", "method", "epochs", "lambda_point", "batch_size", "lr", "img_size", "seed", "device",
                "workers", "decode", "cam",
            )}
            config.update(parse_options(options["option"]))
            job = create_training_job(dataset=dataset, batches=batches, config=config,
                                      source=TrainingJob.Source.COMMAND)
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(m)}" for field, m in error.message_dict.items()))
        except (ManifestBuildError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(
            f"training job {job.pk} queued on the gpu queue; follow it at /api/training/jobs/{job.pk}/ or in the admin"
        ))


def parse_options(pairs):
    """["name=json", ...] -> {name: value}; the value is JSON (a bare word is taken as a string)."""
    values = {}
    for pair in pairs:
        name, separator, raw = pair.partition("=")
        if not separator:
            raise ValueError(f"--option {pair!r}: expected NAME=VALUE")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values
