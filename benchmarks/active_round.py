"""Does choosing the second round by the model's uncertainty beat a random second round, at equal HIT budget?

The loop's own claim (seed 004: acquisition by uncertainty), measured through the product on the demo shapes:

1. round 1: the demo ImageNet-style set is imported and packed in random order (as benchmarks/learning_effect.py
   does); the simulated crowd works the first --round1-hits HITs through the worker API, the automatic review
   decides them;
2. a model is trained on round 1's approved clicks as the product trains one (run_training_job, the recipe's
   method), promoted, and scores every image (score_images: entropy of its prediction per image);
3. two second rounds of the same budget (--round2-hits HITs, the same crowd): one packed with
   ``build_hits --order uncertainty`` (the most uncertain images' pages first), one with ``--order random``;
4. for each, the product's manifest of round 1 + that round trains the recipe's method with every seed.

Labels of train images come with the dataset either way; what the rounds decide is which images get clicks. FILE
has the shape of learning_effect.json, with "methods" holding the two second rounds ("uncertainty", "random"),
plus what each round clicked (images with a click, new ones beyond round 1, averaged clicks on the object).
Whichever wins is reported as measured.

    nice -n 10 .venv/bin/python benchmarks/active_round.py --seeds 3 --out benchmarks/results/active_round.json \\
        --jobs 3
"""
import argparse
import io
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import learning_effect, support  # noqa: E402
from benchmarks.learning_effect import BATCH, DATASET  # noqa: E402

ORDERS = ("uncertainty", "random")


def clicked_rows(manifest):
    return {manifest.image[row] for row in manifest.indices("train") if manifest.point_weight[row, 0] > 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    learning_effect.add_common_arguments(parser, "var/benchmarks/active_round")
    parser.add_argument("--round1-hits", type=int, default=1, help="HITs the crowd works in round 1")
    parser.add_argument("--round2-hits", type=int, default=1, help="HITs of each second round (the equal budget)")
    parser.add_argument("--out", required=True, help="results JSON (a .png plot is written beside it)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    work = Path(arguments.work).resolve()
    database_url = arguments.database_url or f"sqlite:///{work / 'product.sqlite3'}"
    seeds = list(range(arguments.seeds))
    recipe = learning_effect.recipe_from_arguments(arguments)
    record = support.run_record(dict(vars(arguments), database_url=database_url.split("@")[-1]))
    started = time.perf_counter()

    learning_effect.prepare_product(work, database_url)
    learning_effect.collect_clicks(
        work, per_class=arguments.per_class, data_seed=arguments.data_seed, crowd_workers=arguments.crowd_workers,
        mix=arguments.mix, variant=arguments.variant, crowd_seed=arguments.crowd_seed, hits=arguments.round1_hits,
    )
    round1_path, round1 = learning_effect.build_manifest(work, [BATCH])
    round1_model, _ = train_and_score([BATCH], recipe)
    print(f"round 1 model: {round1_model}", flush=True)

    arms, crowd = {}, {}
    for order in ORDERS:
        batch = f"{DATASET}-r2-{order}"
        learning_effect.pack_and_work(
            batch, order=order, variant=arguments.variant, seed=arguments.data_seed + 1,
            crowd_workers=arguments.crowd_workers, mix=arguments.mix, crowd_seed=arguments.crowd_seed + 1,
            hits=arguments.round2_hits,
        )
        path, manifest = learning_effect.build_manifest(work, [BATCH, batch])
        summary = learning_effect.crowd_summary([BATCH, batch], manifest)
        summary["train_images_with_click_new_in_round_2"] = len(clicked_rows(manifest) - clicked_rows(round1))
        crowd[order] = summary
        print(f"{order}: manifest {path}: {summary}", flush=True)
        arms[order] = (manifest, path, {})
    results = learning_effect.train_all(arms, recipe, seeds, work / "runs", arguments.jobs)
    record.update({
        "round_1": {"hits": arguments.round1_hits, "manifest_hash": round1.content_hash,
                    "train_images_with_click": len(clicked_rows(round1)), "model": round1_model},
        "round_2_hits": arguments.round2_hits, "crowd": crowd,
    })
    learning_effect.results_record(record, recipe, seeds, results, started)
    learning_effect.write_results(
        record, arguments.out, f"second round by uncertainty vs random ({arguments.round2_hits} HIT each), "
        f"{recipe['method']}, {recipe['model']} {recipe['img_size']} px, {len(seeds)} seed(s)",
    )


def train_and_score(batches, config, score=True):
    """The product's loop on the batches: run_training_job (inline, promoted), then score_images unless told not
    to; returns the model's final metrics and its ModelVersion."""
    import torch
    from django.core.management import call_command

    from training.models import ModelVersion

    torch.set_num_threads(1)
    output = io.StringIO()
    call_command("run_training_job", dataset=DATASET, batches=batches, config=json.dumps(config), promote=True,
                 verbosity=0, stdout=output)
    if score:
        call_command("score_images", dataset=DATASET, verbosity=0, stdout=output)
    version = ModelVersion.objects.get(dataset__name=DATASET, is_active=True)
    return {name: version.metrics[name] for name in learning_effect.METRICS if name in version.metrics}, version

if __name__ == "__main__":
    main()
