"""Training throughput: images/s and step time of each method on the same model and data.

Two sources, both through the engine's own train_one_epoch (normalisation, autocast, optimiser step):
- synthetic: uint8 image tensors already on the device (the model's own speed; the point head's cost);
- loader: JPEG files (ImageNet-like 500x375, written once under --data) read through the manifest
  DataLoader with Pillow decoding in worker processes, or with --decode device (nvJPEG on a GPU).
The loader is also timed alone (no model), which says whether it can keep the model busy. On a GPU the run
uses bf16 autocast and channels-last, and prints the GPU utilisation sampled with nvidia-smi during each run.

    .venv/bin/python benchmarks/train_throughput.py                                   # CPU, small defaults
    .venv/bin/python benchmarks/train_throughput.py --device cuda --model resnet50 --img-size 224 \\
        --batch-size 256 --workers 16 --steps 50                                      # on a GPU machine
"""
import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.ml import data as data_module  # noqa: E402
from training.ml import manifest as manifest_module  # noqa: E402
from training.ml.engine import autocast, train_one_epoch, TrainConfig  # noqa: E402
from training.ml.losses import LuabLoss  # noqa: E402
from training.ml.models import create_model  # noqa: E402
from training.ml.transforms import TrainTransform  # noqa: E402

NUM_CLASSES = 1000


class GpuUtilisation:
    """Samples nvidia-smi's utilisation.gpu every 0.2 s while running (mean over samples), if nvidia-smi exists."""

    def __init__(self):
        self.available = shutil.which("nvidia-smi") is not None
        self.samples, self._stop = [], threading.Event()

    def _sample(self):
        while not self._stop.wait(0.2):
            output = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True,
            ).stdout.strip()
            if output.isdigit():
                self.samples.append(int(output))

    def __enter__(self):
        if self.available:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.available:
            self._thread.join()

    @property
    def mean(self):
        return statistics.mean(self.samples) if self.samples else None


def write_jpegs(directory, count, rng):
    """ImageNet-sized JPEGs (smooth colour fields plus noise, about 100 KB), written once."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"{index:05d}.jpg"
        if not path.exists():
            base = rng.integers(0, 255, (6, 8, 3)).astype(np.uint8)
            image = Image.fromarray(base).resize((500, 375), Image.BICUBIC)
            pixels = np.asarray(image).astype(np.int16) + rng.integers(-20, 20, (375, 500, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path.resolve()))
    return paths


def jpeg_manifest(directory, entries_needed, files):
    rng = np.random.default_rng(0)
    paths = write_jpegs(directory / "jpeg", files, rng)
    entries = [{
        "image": paths[i % len(paths)], "split": "train", "labels": [int(rng.integers(NUM_CLASSES))],
        "points": {0: (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)), 1.0)},
    } for i in range(entries_needed)]
    return manifest_module.build("imagenet", [f"class {i}" for i in range(NUM_CLASSES)], entries)


def synthetic_batches(batch_size, img_size, device, steps):
    batch = {
        "pixels": torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, device=device),
        "label": torch.randint(0, NUM_CLASSES, (batch_size,), device=device),
        "points": torch.rand(batch_size, 1, 2, device=device),
        "weights": torch.ones(batch_size, 1, device=device),
    }
    return [batch] * steps


def time_training(method, arguments, device, batches_for, decode_dataset=None):
    """(images/s, ms/step, GPU utilisation) of arguments.steps timed steps after arguments.warmup steps."""
    torch.manual_seed(0)
    model = create_model(arguments.model, NUM_CLASSES, 1, method).to(device)
    if arguments.channels_last:
        model.to(memory_format=torch.channels_last)
    trained = torch.compile(model) if arguments.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = LuabLoss(method, multi_label=False, lambda_point=10.0)
    amp = autocast(TrainConfig(manifest_path="", out_dir="", amp=arguments.amp), device)
    common = dict(amp_context=amp, channels_last=arguments.channels_last, decode_dataset=decode_dataset)
    train_one_epoch(trained, criterion, optimizer, batches_for(arguments.warmup), device, total_steps=arguments.warmup,
                    **common)
    if device.type == "cuda":
        torch.cuda.synchronize()
    with GpuUtilisation() as utilisation:
        started = time.perf_counter()
        train_one_epoch(trained, criterion, optimizer, batches_for(arguments.steps), device,
                        total_steps=arguments.steps, **common)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
    return arguments.batch_size * arguments.steps / elapsed, 1000 * elapsed / arguments.steps, utilisation.mean


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="timm model (default: resnet50 on GPU, resnet18 on CPU)")
    parser.add_argument("--img-size", type=int, default=None, help="default: 224 on GPU, 112 on CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on GPU, 32 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 on GPU, 5 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 GPU, 2 CPU)")
    parser.add_argument("--methods", nargs="+", default=["baseline", "luab"])
    parser.add_argument("--sources", nargs="+", default=["synthetic", "loader"], choices=["synthetic", "loader"])
    parser.add_argument("--workers", type=int, default=None, help="loader processes (default: CPU count)")
    parser.add_argument("--decode", default="pil", choices=data_module.DECODE_MODES)
    parser.add_argument("--files", type=int, default=512, help="distinct JPEG files for the loader source")
    parser.add_argument("--data", default="var/benchmarks/train_throughput")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    arguments = parser.parse_args()

    use_cuda = arguments.device == "cuda" or (arguments.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    gpu = device.type == "cuda"
    arguments.model = arguments.model or ("resnet50" if gpu else "resnet18")
    arguments.img_size = arguments.img_size or (224 if gpu else 112)
    arguments.batch_size = arguments.batch_size or (256 if gpu else 32)
    arguments.steps = arguments.steps or (50 if gpu else 5)
    arguments.warmup = arguments.warmup if arguments.warmup is not None else (10 if gpu else 2)
    arguments.workers = arguments.workers if arguments.workers is not None else len(os.sched_getaffinity(0))
    arguments.amp = arguments.channels_last = gpu
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    if gpu:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{arguments.model} {arguments.img_size}px, batch {arguments.batch_size}, {arguments.steps} timed steps "
          f"on {name}; bf16 autocast and channels-last: {gpu}; compile: {arguments.compile}")

    rows = []
    if "synthetic" in arguments.sources:
        for method in arguments.methods:
            def batches_for(steps):
                return synthetic_batches(arguments.batch_size, arguments.img_size, device, steps)
            rows.append(("synthetic", method, *time_training(method, arguments, device, batches_for)))
    if "loader" in arguments.sources:
        entries = arguments.batch_size * (arguments.steps + arguments.warmup) * 2
        manifest = jpeg_manifest(Path(arguments.data), entries, arguments.files)
        dataset = data_module.ManifestDataset(
            manifest, "train", TrainTransform(arguments.img_size), decode=arguments.decode
        )
        sampler = data_module.EpochBatchSampler(len(dataset), arguments.batch_size, shuffle=True)
        loader = data_module.make_loader(dataset, sampler, arguments.workers, pin_memory=gpu)

        def batches_for(steps):
            return itertools.islice(loader, steps)

        started = time.perf_counter()
        for batch in batches_for(arguments.steps):
            if "data" in batch:
                data_module.decode_batch_on_device(batch, dataset, device)
        loader_rate = arguments.batch_size * arguments.steps / (time.perf_counter() - started)
        print(f"loader alone ({arguments.decode} decode, {arguments.workers} workers): {loader_rate:.0f} images/s")
        for method in arguments.methods:
            rows.append((f"loader/{arguments.decode}", method, *time_training(method, arguments, device, batches_for,
                                                                            dataset)))

    print(f"{'source':14s}{'method':10s}{'images/s':>10s}{'ms/step':>10s}{'vs baseline':>13s}{'GPU util %':>12s}")
    baseline = {source: rate for source, method, rate, _, _ in rows if method == "baseline"}
    for source, method, rate, step_ms, utilisation in rows:
        overhead = f"{(baseline[source] / rate - 1) * 100:+.1f}%" if source in baseline else "-"
        shown = f"{utilisation:.0f}" if utilisation is not None else "n/a"
        print(f"{source:14s}{method:10s}{rate:10.1f}{step_ms:10.1f}{overhead:>13s}{shown:>12s}")


if __name__ == "__main__":
    main()
