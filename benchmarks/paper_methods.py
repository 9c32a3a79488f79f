"""The companion papers' localisation methods side by side on the demo shapes: WSOL metrics (seed 002:
MaxBoxAccV2 at IoU 0.3/0.5/0.7, PxAP against the shapes' masks) and seed 001's IoA-P / mAP-loc, for each method's
own map (`cam auto`) and for PatchCluster on top of the patch loss.

Data: the demo ImageNet-style shapes (devtools/demo_data.py) with idealised clicks: each train image gets one
click at its shape's box centre plus Gaussian noise (sd 15% of the box), 10% of them none (so PatchCluster has
images to pseudo-label); val/shifted carry each shape's box and polygon (PxAP and IoA-P use the masks). The same
data, epochs and seeds for every row.
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

from devtools import demo_data  # noqa: E402  (generator only: no Django needed)
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


def demo_manifest(out_dir, per_class, seed=0):
    """Generate (once) the demo images and write their manifest; returns (path, click stats)."""
    data_dir = out_dir / "demo-imagenet"
    rng = np.random.default_rng(seed)
    entries, clicked = [], 0
    for image in demo_data.generate_imagenet(data_dir, seed=seed, per_class=per_class):
        obj = image.objects[0]
        left, top, w, h = obj.bbox
        size = np.array([image.width, image.height])
        box = [left / image.width, top / image.height, (left + w) / image.width, (top + h) / image.height]
        polygon = (np.asarray(obj.polygon, np.float64).reshape(-1, 2) / size).ravel().tolist()
        points = {}
        if image.split == "train" and rng.uniform() >= 0.1:
            click = (np.array([left + w / 2, top + h / 2]) + rng.normal(0, 0.15, 2) * [w, h]) / size
            points[0] = (*np.clip(click, 0, 1), 1.0)
            clicked += 1
        entries.append({
            "image": str((data_dir / image.file_name).resolve()), "split": image.split, "labels": [obj.class_index],
            "points": points, "boxes": [{"class": obj.class_index, "box": box, "polygons": [polygon]}],
        })
    names = [shape.name for shape in demo_data.CLASSES]
    manifest = manifest_module.build("imagenet", names, entries, source={"demo": "imagenet", "clicks": "idealised"})
    stats = {"train_images": sum(e["split"] == "train" for e in entries), "with_click": clicked}
    return manifest_module.write(manifest, out_dir / "manifests"), stats


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
