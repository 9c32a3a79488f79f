"""Do clicks help a classifier? Labels only vs LUAB vs attentive pooling (vs patch), with the clicks the product
collects, on the demo shapes.

Everything goes through the product: the demo ImageNet-style set is generated (devtools/demo_data.py) and
imported (import_imagenet, which also reads each image's background class), packed into HITs (build_hits),
published, and worked by the simulated crowd through the worker API (simulate_crowd --in-process, the product's
default mix of diligent, sloppy, spammer and centre-clicking workers); each submission's automatic review runs as
the Celery task does (eagerly, in this process). The training manifest is the product's own (training.manifest_builder:
the first click of every approved selecting record, averaged per image). Then every method trains on that one
manifest with every seed, with the same recipe (training/ml/recipes.py, default cpu-demo); only the objective
differs.

What the demo data makes measurable (devtools/demo_data.py): in train and val half of the images sit on their
class's background texture; in the shifted split the texture is drawn independently of the class, so chance and a
model that only reads the background both score 1/12 top-1 there, and "predicted = background class" (1/12 for a
model that ignores the background, 1 for one that reads nothing else) says which one a model is closer to. Point
accuracy (the predicted point on the object's box) is compared with the centre prior: always pointing at the
middle of the image.

    nice -n 10 .venv/bin/python benchmarks/learning_effect.py --seeds 3 --methods baseline,luab,attentive \\
        --out benchmarks/results/learning_effect.json --jobs 2

writes FILE (JSON: commit, machine, settings, recipe, seeds, crowd, chance, centre_prior, and per method each metric's
mean, sample standard deviation and per-seed values, fractions in [0, 1]) and a plot beside it (FILE with .png).
The database is the benchmark's own (--database-url; default a SQLite file in --work, or the environment's
LEARNING_EFFECT_DATABASE_URL), recreated on every run; run folders are named by manifest and config hash, so a
re-run with the same data and options reuses finished runs and a changed option trains afresh.
"""
import argparse
import io
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import support  # noqa: E402

logger = logging.getLogger("benchmarks.learning_effect")

METRICS = ("val_top1", "shifted_top1", "val_point_accuracy", "shifted_point_accuracy", "shifted_pred_is_background")
DATASET, BATCH = "effect-imagenet", "effect-imagenet-r1"
DEFAULT_MIX = "diligent=0.7,sloppy=0.15,spammer=0.1,centre=0.05"  # simulate_crowd's default


def prepare_product(work, database_url):
    """Point Django at the benchmark's own, fresh database and file storage under work; review tasks run eagerly."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "var", ignore_errors=True)  # the stored files go with the database (same names each run)
    if database_url.startswith("sqlite"):
        Path(database_url.split("///", 1)[1]).unlink(missing_ok=True)
    else:
        support.fresh_database(database_url)
    support.setup_django(
        database_url, VAR_DIR=str(work / "var"), MEDIA_ROOT=str(work / "var" / "media"),
        CELERY_TASK_ALWAYS_EAGER="true", PUBLIC_BASE_URL="http://127.0.0.1:8000",
    )


def collect_clicks(work, *, per_class, data_seed, crowd_workers, mix, variant, crowd_seed, hits=None):
    """Generate and import the demo set, pack it into a batch, publish it and let the simulated crowd work its HITs
    (all of them, or the first `hits`)."""
    import_demo(work, per_class=per_class, data_seed=data_seed)
    pack_and_work(BATCH, order="random", variant=variant, seed=data_seed, crowd_workers=crowd_workers, mix=mix,
                  crowd_seed=crowd_seed, hits=hits)


def import_demo(work, *, per_class, data_seed):
    """Generate the demo ImageNet-style set under work and import it as DATASET."""
    from django.core.management import call_command

    from devtools import demo_data

    data_dir = work / "demo-imagenet"
    shutil.rmtree(data_dir, ignore_errors=True)  # a folder from a run with more images a class would add its extras
    demo_data.generate_imagenet(data_dir, seed=data_seed, per_class=per_class)
    call_command("import_imagenet", str(data_dir), name=DATASET, verbosity=0, stdout=io.StringIO())


def pack_and_work(batch, *, order, variant, seed, crowd_workers, mix, crowd_seed, hits=None, **batch_options):
    """build_hits (in the given order; batch_options: its other options, e.g. items_per_page), publish,
    simulate_crowd --in-process: the product's own commands."""
    from django.core.management import call_command

    output = io.StringIO()
    call_command("build_hits", dataset=DATASET, batch=batch, variant=variant, order=order, seed=seed, stdout=output,
                 **batch_options)
    call_command("publish", batch, verbosity=0, stdout=output)
    call_command("simulate_crowd", batch, in_process=True, hits=hits, fill=None if hits else 1.0,
                 workers=crowd_workers, mix=mix, seed=crowd_seed, verbosity=0, stdout=output)
    logger.info("%s:\n%s", batch, output.getvalue())


def crowd_summary(batch_names, manifest):
    """Assignments by decision, and how good the manifest's click targets are (train images with a click, and the
    share of those whose averaged click lies on the object's box), read back from the product's database."""
    from django.db.models import Count

    from annotator.models import Assignment, Batch, GroundTruthObject, Split
    from luab.geometry import point_in_box
    from training.manifest_builder import image_locator

    states = dict(
        Assignment.objects.filter(hit__batch__name__in=batch_names).values_list("state").annotate(n=Count("id"))
    )
    dataset = Batch.objects.get(name=batch_names[0]).dataset
    train_images = list(dataset.images.filter(split=Split.TRAIN))
    boxes = {}
    for image_id, bbox in GroundTruthObject.objects.filter(image__in=train_images).values_list("image_id", "bbox"):
        boxes.setdefault(image_id, []).append(bbox)
    locate = image_locator()
    row_of = {location: row for row, location in enumerate(manifest.image.tolist())}
    clicked = on_object = 0
    for image in train_images:
        row = row_of[locate(image.file.name)]
        if manifest.point_weight[row, 0] > 0:
            clicked += 1
            x, y = manifest.point[row, 0].tolist()
            on_object += any(point_in_box(x * image.width, y * image.height, bbox) for bbox in boxes.get(image.id, []))
    return {
        "assignments": states, "train_images": len(train_images), "train_images_with_click": clicked,
        "averaged_click_on_object": on_object / max(clicked, 1),
    }


def build_manifest(work, batch_names):
    from annotator.models import Batch
    from training import manifest_builder
    from training.ml import manifest as manifest_module

    batches = list(Batch.objects.filter(name__in=batch_names).select_related("dataset"))
    path = manifest_builder.build_manifest(batches[0].dataset, batches, out_dir=work / "manifests")
    return path, manifest_module.read(path)


def train_one(options):
    """One run in a fresh process (one torch thread: fastest on a shared CPU); returns its last epoch's metrics."""
    import torch

    from training.ml import manifest as manifest_module
    from training.ml.engine import TrainConfig, run

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    result = run(TrainConfig.from_dict(options))
    classes = manifest_module.read(options["manifest_path"], verify=False).num_classes
    return {**result["metrics"], "seconds": time.perf_counter() - started, "resolved": result["config"],
            "num_classes": classes}


def train_all(arms, recipe, seeds, runs_dir, jobs):
    """arms: {name: (manifest, manifest path, TrainConfig overrides)} -> {name: [final metrics of each seed]}.

    Run folders are named by manifest and config hash, so an equal run is reused and a changed one starts afresh.
    """
    from training.ml.engine import TrainConfig

    planned = []
    for name, (manifest, manifest_path, overrides) in arms.items():
        for seed in seeds:
            options = dict(recipe, **overrides, seed=seed, manifest_path=str(manifest_path), out_dir="")
            config_hash = TrainConfig.from_dict(options).content_hash()[:12]
            options["out_dir"] = str(runs_dir / manifest.content_hash[:16] / f"{name}-seed{seed}-{config_hash}")
            planned.append((name, seed, options))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [(name, seed, pool.submit(train_one, options)) for name, seed, options in planned]
        results = {}
        for name, seed, future in futures:
            metrics = future.result()
            results.setdefault(name, []).append(metrics)
            print(f"{name:11s} seed {seed}: " + "  ".join(f"{metric} {metrics[metric]:.3f}" for metric in METRICS)
                  + f"  ({metrics['seconds']:.0f} s)", flush=True)
    return results


def summary(values):
    return {
        "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def method_table(results):
    return {method: {name: summary([run[name] for run in runs]) for name in METRICS} for method, runs in results.items()}


def results_record(record, recipe, seeds, results, started):
    """The results JSON's common part: recipe as resolved, chance, centre prior and each compared entry's table."""
    first = next(iter(results.values()))[0]
    record.update({
        "recipe": recipe, "resolved_config": {k: v for k, v in first["resolved"].items()
                                              if k not in ("manifest_path", "out_dir", "method", "seed")},
        "seeds": seeds,
        "chance": 1 / first["num_classes"],
        "background_only_shifted_top1": 1 / first["num_classes"],
        "centre_prior": {"val_point_accuracy": first["val_centre_point_accuracy"],
                         "shifted_point_accuracy": first["shifted_centre_point_accuracy"]},
        "methods": method_table(results),
        "seconds": {"total": round(time.perf_counter() - started, 1),
                    "per_run": {m: [round(r["seconds"], 1) for r in runs] for m, runs in results.items()}},
        "load_average_at_end": round(os.getloadavg()[0], 2),
    })
    return record


def write_results(record, out, title):
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    plot(record, out.with_suffix(".png"), title)
    print_table(record)
    print(f"\nwrote {out} and {out.with_suffix('.png')}")


def print_table(record):
    print(f"\nshifted split: chance {record['chance']:.3f} (= a background-only classifier's top-1); centre prior "
          f"point accuracy val {record['centre_prior']['val_point_accuracy']:.3f}, shifted "
          f"{record['centre_prior']['shifted_point_accuracy']:.3f}")
    print(f"{'method':10s}" + "".join(f"{name:>30s}" for name in METRICS))
    for method, table in record["methods"].items():
        cells = [f"{table[name]['mean'] * 100:6.1f} +- {table[name]['std'] * 100:4.1f}" for name in METRICS]
        print(f"{method:10s}" + "".join(f"{cell:>30s}" for cell in cells))


def plot(record, path, title):
    """Bars per method (mean, seed values as dots): shifted top-1 and predicted = background next to chance; point
    accuracy next to the centre prior."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    methods = list(record["methods"])
    panels = [
        ("shifted split: top-1 and predicted = background class",
         ("shifted_top1", "shifted_pred_is_background"), [("chance = background-only top-1", record["chance"], "--")]),
        ("point accuracy (on the object's box)", ("val_point_accuracy", "shifted_point_accuracy"),
         [("centre prior (val)", record["centre_prior"]["val_point_accuracy"], ":"),
          ("centre prior (shifted)", record["centre_prior"]["shifted_point_accuracy"], "--")]),
    ]
    figure, axes_row = pyplot.subplots(1, 2, figsize=(11, 4))
    for axes, (panel_title, names, lines) in zip(axes_row, panels):
        width = 0.38
        for offset, name in enumerate(names):
            xs = [i + (offset - 0.5) * width for i in range(len(methods))]
            means = [record["methods"][m][name]["mean"] for m in methods]
            axes.bar(xs, means, width, label=name)
            for x, method in zip(xs, methods):
                values = record["methods"][method][name]["values"]
                axes.plot([x] * len(values), values, "k.", markersize=4)
        for line_label, line_value, style in lines:
            axes.axhline(line_value, color="grey", linestyle=style, label=line_label)
        axes.set_xticks(range(len(methods)), methods)
        axes.set_ylim(0, 1)
        axes.set_title(panel_title, fontsize="medium")
        axes.legend(fontsize="small")
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def add_common_arguments(parser, default_work):
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default 3)")
    parser.add_argument("--work", default=default_work, help="data, database, manifests and run folders")
    parser.add_argument("--database-url", default=os.environ.get("LEARNING_EFFECT_DATABASE_URL"),
                        help="the benchmark's own database, recreated (default: a SQLite file in --work)")
    parser.add_argument("--per-class", type=int, default=100, help="train images per class (12 classes)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--crowd-workers", type=int, default=4)
    parser.add_argument("--crowd-seed", type=int, default=0)
    parser.add_argument("--mix", default=DEFAULT_MIX, help="simulated worker profiles (simulate_crowd --mix)")
    parser.add_argument("--variant", default="red_dot", help="interface variant of the batch (as make demo)")
    parser.add_argument("--recipe", default="cpu-demo", help="training/ml/recipes.py")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=JSON",
                        help="override a recipe option, e.g. --option epochs=20 (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at the same time (processes)")


def recipe_from_arguments(arguments):
    from training.ml.recipes import recipe

    overrides = {}
    for item in arguments.option:
        name, _, value = item.partition("=")
        overrides[name] = json.loads(value)
    return recipe(arguments.recipe, **overrides)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "var/benchmarks/learning_effect")
    parser.add_argument("--methods", default="baseline,luab,attentive",
                        help="comma-separated: baseline, luab, attentive, patch")
    parser.add_argument("--out", required=True, help="results JSON (a .png plot is written beside it)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    work = Path(arguments.work).resolve()
    database_url = arguments.database_url or f"sqlite:///{work / 'product.sqlite3'}"
    methods = [m.strip() for m in arguments.methods.split(",") if m.strip()]
    seeds = list(range(arguments.seeds))
    recipe = recipe_from_arguments(arguments)
    record = support.run_record(dict(vars(arguments), database_url=database_url.split("@")[-1]))
    started = time.perf_counter()

    prepare_product(work, database_url)
    collect_clicks(work, per_class=arguments.per_class, data_seed=arguments.data_seed,
                   crowd_workers=arguments.crowd_workers, mix=arguments.mix, variant=arguments.variant,
                   crowd_seed=arguments.crowd_seed)
    manifest_path, manifest = build_manifest(work, [BATCH])
    crowd = crowd_summary([BATCH], manifest)
    print(f"manifest {manifest_path}: {crowd}", flush=True)
    collected_s = time.perf_counter() - started

    arms = {method: (manifest, manifest_path, {"method": method}) for method in methods}
    results = train_all(arms, recipe, seeds, work / "runs", arguments.jobs)
    record.update({"manifest_hash": manifest.content_hash, "crowd": crowd, "collect_seconds": round(collected_s, 1)})
    results_record(record, recipe, seeds, results, started)
    write_results(record, arguments.out, f"{recipe['model']} {recipe['img_size']} px, {recipe['epochs']} epochs, "
                  f"{len(seeds)} seed(s), clicks from the simulated crowd through the product")


if __name__ == "__main__":
    main()
