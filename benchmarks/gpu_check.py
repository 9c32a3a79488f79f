"""The GPU claims in one command: point-loss overhead, GPU utilisation by decode path, the learning effect at a
larger resolution. Needs a CUDA device (refuses to run without one); writes benchmarks/results/gpu_check.json
naming the device, and benchmarks/results/gpu_learning_effect.json (+ .png).

1. images/s of baseline vs LUAB on timm ResNet-50, 224 px, bf16 autocast, channels-last, batch 256, synthetic
   uint8 batches already on the GPU (the model's own speed): target LUAB overhead <= 1%;
2. GPU utilisation (nvidia-smi, sampled every 0.2 s) while training from JPEG files through the manifest loader,
   with Pillow decoding in --workers CPU processes vs nvJPEG decoding on the GPU (--decode device): target > 90%;
3. benchmarks/learning_effect.py on the GPU at a larger resolution (default resnet18, 160 px, 20 epochs, 3 seeds;
   the demo data at --per-class 100 as on the CPU), through the product as there.

    .venv/bin/python benchmarks/gpu_check.py                   # everything, about 10 minutes on one H100/H200
    .venv/bin/python benchmarks/gpu_check.py --skip-learning   # 1 and 2 only, a couple of minutes
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import support, train_throughput  # noqa: E402
from training.ml import data as data_module  # noqa: E402
from training.ml.transforms import TrainTransform  # noqa: E402

OVERHEAD_TARGET = 0.01
UTILISATION_TARGET = 90


def throughput(arguments, device):
    """{"baseline": images/s, "luab": images/s, "luab_overhead": fraction} on synthetic batches."""
    rates = {}
    for method in ("baseline", "luab"):
        def batches_for(steps):
            return train_throughput.synthetic_batches(arguments.batch_size, arguments.img_size, device, steps)
        rates[method], _, _ = train_throughput.time_training(method, arguments, device, batches_for)
    return {**{f"{m}_images_per_s": r for m, r in rates.items()}, "luab_overhead": rates["baseline"] / rates["luab"] - 1}


def utilisation(arguments, device, decode):
    """(images/s, mean GPU utilisation %) training LUAB from JPEG files with the given decode path."""
    entries = arguments.batch_size * (arguments.steps + arguments.warmup) * 2
    manifest = train_throughput.jpeg_manifest(Path(arguments.data), entries, arguments.files)
    dataset = data_module.ManifestDataset(manifest, "train", TrainTransform(arguments.img_size), decode=decode)
    sampler = data_module.EpochBatchSampler(len(dataset), arguments.batch_size, shuffle=True)
    loader = data_module.make_loader(dataset, sampler, arguments.workers, pin_memory=True)

    def batches_for(steps):
        return itertools.islice(loader, steps)

    rate, _, mean_utilisation = train_throughput.time_training("luab", arguments, device, batches_for, dataset)
    return {"images_per_s": rate, "gpu_utilisation_percent": mean_utilisation}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="loader processes")
    parser.add_argument("--files", type=int, default=2048, help="distinct JPEG files (500 x 375) for the loader")
    parser.add_argument("--data", default="var/benchmarks/gpu_check")
    parser.add_argument("--skip-learning", action="store_true", help="skip the learning-effect run (part 3)")
    parser.add_argument("--learning-options", nargs="*", default=[
        'model="resnet18"', "img_size=160", "min_feature_cells=7", "epochs=20", "batch_size=64", "lr=0.001",
        'device="cuda"', "amp=true",
    ], help="recipe overrides for learning_effect.py (NAME=JSON)")
    arguments = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    timing = SimpleNamespace(
        model=arguments.model, img_size=arguments.img_size, batch_size=arguments.batch_size, steps=arguments.steps,
        warmup=arguments.warmup, amp=True, channels_last=True, compile=False,
    )
    record = support.run_record(vars(arguments))
    record["device"] = {"name": torch.cuda.get_device_name(device), "torch": torch.__version__,
                        "cuda": torch.version.cuda, "count": torch.cuda.device_count()}
    started = time.perf_counter()
    record["throughput"] = throughput(timing, device)
    record["throughput"]["target_overhead"] = OVERHEAD_TARGET
    record["throughput"]["meets_target"] = record["throughput"]["luab_overhead"] <= OVERHEAD_TARGET
    timing_with_loader = SimpleNamespace(**vars(timing), workers=arguments.workers, files=arguments.files,
                                         data=arguments.data)
    record["utilisation"] = {decode: utilisation(timing_with_loader, device, decode) for decode in ("pil", "device")}
    for decode, values in record["utilisation"].items():
        values["meets_target"] = (values["gpu_utilisation_percent"] or 0) > UTILISATION_TARGET
    record["utilisation"]["target_percent"] = UTILISATION_TARGET
    print(json.dumps({k: record[k] for k in ("device", "throughput", "utilisation")}, indent=2), flush=True)

    if not arguments.skip_learning:
        learning_out = Path(arguments.out).with_name("gpu_learning_effect.json")
        command = [sys.executable, str(ROOT / "benchmarks" / "learning_effect.py"), "--seeds", "3",
                   "--methods", "baseline,luab,attentive", "--out", str(learning_out), "--jobs", "3",
                   "--work", "var/benchmarks/gpu_learning_effect"]
        for option in arguments.learning_options:
            command += ["--option", option]
        subprocess.run(command, check=True, cwd=ROOT)
        record["learning_effect"] = str(learning_out.relative_to(ROOT) if learning_out.is_absolute() else learning_out)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(arguments.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
