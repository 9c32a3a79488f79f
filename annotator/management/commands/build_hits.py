"""Pack a dataset's training images into the HITs of a batch (creating the batch when needed)."""
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotator import packing
from annotator.models import Batch, Dataset, Provider, TaskKind

def _reward(value):
    try:
        reward = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--reward: {value!r} is not an amount like 1.50") from None
    if reward <= 0:
        raise CommandError(f"--reward: {value} must be positive")
    return reward


class Command(BaseCommand):
    help = "Pack a dataset into HITs: ImageNet-style pages of one class, or COCO-style pages of one image."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset name.")
        parser.add_argument("--batch", required=True, help="Batch name (created when it does not exist).")
        parser.add_argument("--task-kind", choices=TaskKind.values, help="Defaults to the dataset's kind.")
        parser.add_argument("--pages-per-hit", type=int, help="Default 10 (ImageNet-style) or 20 (COCO-style).")
        parser.add_argument("--items-per-page", type=int, help="Candidates per ImageNet-style page (default 48).")
        parser.add_argument("--in-class-ratio", type=float, help="Share of a page's candidates from its class (0.75).")
        parser.add_argument("--reward", type=_reward, help="Reward per HIT in USD (default 1.50 or 2.00).")
        parser.add_argument("--provider", choices=Provider.values, help="Crowd market (default link).")
        parser.add_argument("--max-hits-per-worker", type=int)
        parser.add_argument("--assignment-duration", type=int, metavar="SECONDS",
                            help="Time a worker has to submit after taking a HIT; then the assignment expires and "
                                 "its place is free again (default 3600; also MTurk's AssignmentDuration).")
        parser.add_argument("--variant", choices=Batch.Variant.values, help="Interface variant (default default).")
        parser.add_argument("--gold", type=int, default=0, help="Gold candidates (labelled val images) per page.")
        parser.add_argument("--round", type=int, help="Collection round (2 re-packs what --from-batch missed).")
        parser.add_argument("--from-batch", help="Round 1 batch whose unselected images round 2 re-packs.")
        parser.add_argument("--order", choices=packing.ORDERS, default=packing.ORDER_RANDOM,
                            help="Highest acquisition score of the dataset's active model first (seed 004): "
                                 "entropy, margin, inconsistency (prediction vs its flipped copy), unified "
                                 "(entropy x inconsistency), or uncertainty (the score its inference job chose).")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"--dataset: no dataset named {options['dataset']!r}") from None
        batch = Batch.objects.filter(name=options["batch"]).first()
        if batch is not None and batch.hits.exists():
            self.stdout.write(f"batch {batch.name} already has {batch.hits.count()} HITs; nothing to do")
            return
        try:
            with transaction.atomic():
                batch = self._configure_batch(batch, dataset, options)
                result = packing.build_hits(
                    batch, gold_per_page=options["gold"], order=options["order"], seed=options["seed"],
                    show_progress=True,
                )
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()))
        self.stdout.write(self.style.SUCCESS(
            f"batch {batch.name}: {result.hits} HITs, {result.pages} pages, {result.items} candidates, "
            f"{result.images_covered} images covered"
        ))

    def _configure_batch(self, batch, dataset, options):
        if batch is not None and batch.dataset_id != dataset.id:
            raise CommandError(f"--batch: batch {batch.name} belongs to dataset {batch.dataset.name}")
        task_kind = options["task_kind"] or (batch.task_kind if batch else dataset.kind)
        fields = {
            "pages_per_hit": options["pages_per_hit"],
            "items_per_page": options["items_per_page"],
            "in_class_ratio": options["in_class_ratio"],
            "reward": options["reward"],
            "provider": options["provider"],
            "max_hits_per_worker": options["max_hits_per_worker"],
            "interface_variant": options["variant"],
            "round": options["round"],
        }
        if options["from_batch"]:
            try:
                fields["source_batch"] = Batch.objects.get(name=options["from_batch"])
            except Batch.DoesNotExist:
                raise CommandError(f"--from-batch: no batch named {options['from_batch']!r}") from None
            fields["round"] = fields["round"] or 2
        given = {name: value for name, value in fields.items() if value is not None}
        if batch is None:
            batch = Batch(name=options["batch"], dataset=dataset, task_kind=task_kind)
            for name, value in packing.PAPER_DEFAULTS[task_kind].items():
                setattr(batch, name, value)
        batch.task_kind = task_kind
        for name, value in given.items():
            setattr(batch, name, value)
        if options["assignment_duration"] is not None:
            batch.provider_config = {**batch.provider_config, "assignment_duration": options["assignment_duration"]}
        batch.full_clean()
        batch.save()
        return batch
