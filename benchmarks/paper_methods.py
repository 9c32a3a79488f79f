"""The companion papers' localisation methods side by side on the demo shapes: WSOL metrics (seed 002:
MaxBoxAccV2 at IoU 0.3/0.5/0.7, PxAP against the shapes' masks) and seed 001's IoA-P / mAP-loc, for each method's
own map (`cam auto`) and for PatchCluster on top of the patch loss.

Same data as benchmarks/luab_vs_baseline.py (demo ImageNet-style shapes, SIMULATED clicks, 10% of train images
without any), plus each val/shifted shape's polygon so PxAP has masks; the same epochs and seeds for every row.
Writes benchmarks/results/paper_methods.json (commit, machine, load average, settings, per-run and mean/std).

    nice -n 10 .venv/bin/python benchmarks/paper_methods.py                      # defaults below
    .venv/bin/python benchmarks/paper_methods.py --per-class 10 --epochs 3 --seeds 0   # a quick look
"""
import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator import demo_data  # noqa: E402  (generator only: no Django needed)
from benchmarks.luab_vs_baseline import demo_manifest  # noqa: E402
from training.ml import manifest as manifest_module  # noqa: E402
from training.ml.engine import TrainConfig, run  # noqa: E402

VARIANTS = {  # name: TrainConfig options
    "baseline (CAM)": {"method": "baseline"},
    "luab (CAM)": {"method": "luab", "cam": "classifier"},
    "attentive (attention map)": {"method": "attentive", "cam": "attention"},
    "patch (patch logits)": {"method": "patch"},
    "patch + PatchCluster": {"method": "patch", "patch_cluster": True, "cluster_d_positive": 0.3,
                             "cluster_d_negative": 0.8},
}
METRICS = ("val_top1", "val_maxboxacc_iou30", "val_maxboxacc_iou50", "val_maxboxacc_iou70", "val_maxboxacc_v2",
           "val_pxap", "val_ioap", "val_map_loc", "shifted_maxboxacc_v2")


def with_masks(manifest_path, data_dir, per_class):
    """The manifest with each val/shifted shape's polygon (as fractions), so PxAP and IoA-P use masks."""
    manifest = manifest_module.read(manifest_path)
    images = {str((data_dir / image.file_name).resolve()): image
              for image in demo_data.generate_imagenet(data_dir, seed=0, per_class=per_class)}
    polygons, starts, owners = [], [0], []
    for box_index, row in enumerate(manifest.box_image):
        image = images[str(manifest.image[row])]
        vertices = np.asarray(image.objects[0].polygon, np.float32).reshape(-1, 2) / [image.width, image.height]
        polygons.append(vertices.astype(np.float32))
        starts.append(starts[-1] + len(vertices))
        owners.append(box_index)
    manifest.polygon_xy = np.concatenate(polygons) if polygons else manifest.polygon_xy
    manifest.polygon_start, manifest.polygon_box = np.asarray(starts, np.int64), np.asarray(owners, np.int64)
    return manifest_module.write(manifest, Path(manifest_path).parent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="var/benchmarks/paper_methods")
    parser.add_argument("--per-class", type=int, default=20, help="train images per class (12 classes)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default="benchmarks/results/paper_methods.json")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(arguments.threads)
    load_at_start = os.getloadavg()[0]

    out_dir = Path(arguments.out)
    manifest_path, stats = demo_manifest(out_dir, arguments.per_class)
    manifest_path = with_masks(manifest_path, out_dir / "demo-imagenet", arguments.per_class)
    runs = {}
    for index, name in enumerate(arguments.variants):
        for seed in arguments.seeds:
            started = time.perf_counter()
            config = TrainConfig(
                manifest_path=str(manifest_path), model=arguments.model, epochs=arguments.epochs, seed=seed,
                out_dir=str(out_dir / "runs" / f"variant{index}-seed{seed}"),
                batch_size=arguments.batch_size, lr=arguments.lr, img_size=arguments.img_size, device="cpu",
                crop_scale=(0.35, 1.0), warmup_epochs=1, **VARIANTS[name],
            )
            final = run(config)["metrics"]
            runs.setdefault(name, []).append({metric: final.get(metric) for metric in METRICS})
            print(f"{name:26s} seed {seed}: " + "  ".join(
                f"{metric[4:] if metric.startswith('val_') else metric} {final.get(metric, float('nan')):.3f}"
                for metric in METRICS) + f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = {
        name: {metric: {"mean": float(np.mean([r[metric] for r in rs])), "std": float(np.std([r[metric] for r in rs]))}
               for metric in METRICS if all(r[metric] is not None for r in rs)}
        for name, rs in runs.items()
    }
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    Path(arguments.results).parent.mkdir(parents=True, exist_ok=True)
    Path(arguments.results).write_text(json.dumps({
        "commit": commit, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                      "load_average_start": load_at_start, "load_average_end": os.getloadavg()[0]},
        "settings": vars(arguments), "clicks": stats, "runs": runs, "summary": summary,
    }, indent=2))
    print(f"\n{arguments.model} {arguments.img_size}px, {arguments.epochs} epochs, seeds {arguments.seeds}: "
          f"mean +- sd (%) -> {arguments.results}")
    print(f"{'':26s}" + "".join(f"{m[4:] if m.startswith('val_') else m:>22s}" for m in METRICS))
    for name, values in summary.items():
        print(f"{name:26s}" + "".join(
            f"{values[m]['mean'] * 100:13.1f} +- {values[m]['std'] * 100:4.1f}" if m in values else f"{'-':>22s}"
            for m in METRICS))


if __name__ == "__main__":
    main()
