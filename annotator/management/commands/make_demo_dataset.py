from django.core.management.base import BaseCommand

from annotator import demo_data


class Command(BaseCommand):
    help = ("Generate the demo image set (coloured shapes on textured backgrounds, with a background-shifted split) "
            "in the ImageNet folder layout or the COCO instances format.")

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=["imagenet", "coco"], required=True)
        parser.add_argument("--out", required=True, help="Folder to write into (created if needed).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--per-class", type=int, default=None,
            help="ImageNet: train images per class (default 72); COCO: train images each class appears in "
                 "(default 12).",
        )

    def handle(self, *args, kind, out, seed, per_class, **options):
        progress = options["verbosity"] > 0
        if kind == "imagenet":
            written = demo_data.generate_imagenet(out, seed=seed, per_class=per_class or 72, progress=progress)
        else:
            written = demo_data.generate_coco(out, seed=seed, per_class=per_class or 12, progress=progress)
        counts = {split: sum(image.split == split for image in written) for split in demo_data.SPLITS}
        self.stdout.write(self.style.SUCCESS(
            f"{kind} demo data in {out}: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + " images"))
