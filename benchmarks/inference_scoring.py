"""Throughput of the steering inference path (training/inference.py + training/steering.py), no database.

    .venv/bin/python benchmarks/inference_scoring.py [--model resnet18] [--img-size 224] [--images 256]
        [--batch-size 32] [--device auto] [--classes 12]

Writes a checkpoint of an untrained model in the engine's format, generates JPEGs (192 x 160 px, like the demo
set), then times what an inference job does per chunk: decode + centre crop (EvalTransform), forward, softmax,
predicted points mapped back to the source image, and the entropy and margin scores. Prints images/s (wall clock)
and, on the CPU, images per CPU-second of this process (what a loaded machine distorts least).
"""
import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from msgspec.structs import asdict
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training import inference, steering  # noqa: E402
from training.ml.engine import TrainConfig  # noqa: E402
from training.ml.models import create_model  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--classes", type=int, default=12)
    return parser.parse_args()


def synthetic_jpegs(count, rng):
    images = []
    for _ in range(count):
        pixels = rng.integers(0, 255, (160, 192, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def write_checkpoint(path, args):
    class_names = [f"class {i}" for i in range(args.classes)]
    model = create_model(args.model, args.classes, 1, "luab")
    config = TrainConfig(manifest_path="", out_dir="", model=args.model, img_size=args.img_size)
    torch.save({"model": model.state_dict(), "config": asdict(config), "class_names": class_names,
                "kind": "imagenet"}, path)


def main():
    args = parse_args()
    rng = np.random.default_rng(0)
    images = synthetic_jpegs(args.images, rng)
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = Path(directory) / "checkpoint.pt"
        write_checkpoint(checkpoint, args)
        loaded = inference.load_model(checkpoint, device=args.device)
    inference.predict(loaded, images[:args.batch_size])  # warm-up (allocations, cuDNN choice)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(images), args.batch_size):
        probabilities, _ = inference.predict(loaded, images[start:start + args.batch_size])
        steering.uncertainty(probabilities, "entropy")
        steering.uncertainty(probabilities, "margin")
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"model {args.model} at {args.img_size} px on {loaded.device}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{len(images)} images in {wall:.2f} s: {len(images) / wall:.1f} images/s (wall)"
          + (f", {len(images) / cpu:.1f} images per CPU-second" if loaded.device.type == "cpu" else ""))


if __name__ == "__main__":
    main()
