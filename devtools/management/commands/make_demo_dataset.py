from django.core.management.base import BaseCommand

from devtools import demo_data


class Command(BaseCommand):
    help = ("Generate the demo image set (coloured shapes on textured backgrounds, with a background-shifted split) "
            "in the ImageNet folder layout or the COCO instances format.")

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=["imagenet", "coco"], required=True)
        parser.add_argument("--out", required=True, help="Folder to write into (created if needed).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--per-class", type=int, default=None,
            help=f"ImageNet: train images per class (default {demo_data.DEFAULT_IMAGENET_PER_CLASS}); COCO: about "
                 f"how many train images each class appears in (default {demo_data.DEFAULT_COCO_PER_CLASS}).",
        )

    def handle(self, *args, kind, out, seed, per_class, **options):
        progress = options["verbosity"] > 0
        if kind == "imagenet":
            written = demo_data.generate_imagenet(
                out, seed=seed, per_class=per_class or demo_data.DEFAULT_IMAGENET_PER_CLASS, progress=progress)
        else:
            written = demo_data.generate_coco(
                out, seed=seed, per_class=per_class or demo_data.DEFAULT_COCO_PER_CLASS, progress=progress)
        counts = {split: sum(image.split == split for image in written) for split in demo_data.SPLITS}
        self.stdout.write(self.style.SUCCESS(
            f"{kind} demo data in {out}: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + " images"))
