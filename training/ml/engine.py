"""The training loop: ``run(config)`` trains one model from a manifest into ``config.out_dir``.

Outputs in out_dir: ``checkpoint.pt`` (model, optimizer, epoch, step, history; rewritten atomically
after every epoch and on cancel), ``config.json`` (the resolved TrainConfig: the lambda and output stride the run
used, not "default"), ``metrics.jsonl`` (one JSON line per finished epoch) and, when the manifest has
pseudo-labels, ``pseudo_labels.json`` (each such row marked ``"source": "pseudo_label"``). A run whose out_dir holds a
checkpoint resumes from it, mid-epoch included (the epoch's batch order is seeded, so the remaining batches are the
ones not yet seen), but only with the same data and the same resolved config (its hash is in the checkpoint; only
where the files go, the loader workers, the logging interval and the device may change): anything else is a
different run and is refused, naming the options that differ.

Distributed: launched with ``torchrun`` (WORLD_SIZE > 1 in the environment) the same loop runs
DistributedDataParallel, gloo on the CPU and nccl on GPUs; ``batch_size`` is per process, rank 0 writes the
files and reports progress. On a GPU: bf16 autocast (``amp``) and channels-last by default; ``compile`` wraps
the model in torch.compile. CUDA is only touched inside run().
"""
import contextlib
import json
import logging
import math
import os
import time
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal

import msgspec
import numpy as np
import torch
import torch.distributed as dist
from msgspec.structs import asdict, replace
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from training.ml import data as data_module
from training.ml import manifest as manifest_module
from training.ml import metrics as metrics_module
from training.ml import patchcluster, scl, wsol
from training.ml.losses import POINT_LOSSES, LuabLoss, default_lambda
from training.ml.models import METHODS, count_parameters, create_model, resolve_model_kwargs
from training.ml.transforms import EvalTransform, TrainTransform, normalize

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
PSEUDO_LABELS_NAME = "pseudo_labels.json"  # the manifest's pseudo-labelled rows, when it has any
# Options that say where and how fast a run goes, not what it computes: a resumed run may change them.
RUN_PLACEMENT_OPTIONS = ("manifest_path", "out_dir", "workers", "log_every", "device")


DEVICES = ("auto", "cpu", "cuda")


def _option(kind, help="", choices=(), **bounds):
    """An option's type with its bounds (ge, le) or choices (in the order shown), and the help the admin's form
    shows beside it."""
    if choices:
        return Annotated[Literal[choices], msgspec.Meta(description=help, extra={"choices": choices})]
    return Annotated[kind, msgspec.Meta(description=help, **bounds)]


class TrainConfig(msgspec.Struct):
    """One run's options: the one definition the API, the admin's form and the `train` command validate against
    (msgspec.convert checks types, bounds and choices; __post_init__ the options that depend on each other)."""

    manifest_path: str
    out_dir: str
    model: _option(str, "timm model name (test_resnet: a tiny model for trying things on the CPU).") = "resnet18"
    method: _option(str, "baseline: labels only; luab: plus the point loss on the clicks (seed 000); "
                    "attentive: point-guided pooling; patch: patch-level point loss (seed 001).", METHODS) = "luab"
    epochs: _option(int, "Passes over the training images.", ge=1, le=10_000) = 10
    lambda_point: _option(float, "Weight of the point loss; empty: seed 000's default for the data kind and backbone "
                          "size.", ge=0, le=1e6) | None = None
    point_loss: _option(str, "smooth_l1 (Huber) or mse.", POINT_LOSSES) = "smooth_l1"
    huber_beta: _option(float, "Beta of the Smooth-L1 point loss.") = 1.0
    batch_size: _option(int, "Images per step, per process.", ge=1, le=65_536) = 64
    lr: _option(float, "Learning rate.", ge=0, le=10) = 1e-3
    weight_decay: _option(float, "Weight decay.", ge=0, le=10) = 0.05
    warmup_epochs: _option(float, "Epochs of learning-rate warm-up.") = 0.0
    label_smoothing: _option(float, "Label smoothing of the classification loss.") = 0.0
    img_size: _option(int, "Training crop size in pixels.", ge=16, le=4_096) = 224
    crop_scale: _option(tuple[float, float], "Random-resized-crop area range: two numbers, e.g. 0.08, 1.0.") = (
        0.08, 1.0)
    crop_ratio: _option(tuple[float, float], "Random-resized-crop aspect-ratio range: two numbers.") = (3 / 4, 4 / 3)
    hflip: _option(float, "Probability of a horizontal flip (the points move with it).") = 0.5
    color_jitter: _option(float, "Colour jitter strength (0: off).") = 0.0
    test_crop_ratio: _option(float, "Share of the image kept by the centre crop at evaluation.") = 0.875
    patch_focal_gamma: _option(float, "Focal gamma of the patch-level point loss (method patch).") = 2.0
    seed: _option(int, "Random seed.") = 0
    device: _option(str, "auto: the GPU when there is one, else the CPU.", DEVICES) = "auto"
    amp: _option(bool, "bf16 autocast on the GPU (ignored on the CPU).") = True
    channels_last: _option(bool, "Channels-last memory format; unknown: on the GPU only.") | None = None
    compile: _option(bool, "torch.compile the model.") = False
    workers: _option(int, "Data loader processes.", ge=0, le=256) = 0
    decode: _option(str, "pil: JPEG decoding by Pillow on the CPU; device: on the GPU.",
                    data_module.DECODE_MODES) = "pil"
    checkpoint_path: _option(str, "Local backbone weights to start from (nothing is downloaded).") = ""
    model_kwargs: _option(dict, "Extra timm.create_model arguments, a JSON object.") = msgspec.field(
        default_factory=dict)
    min_feature_cells: _option(int, "Output stride lowered (if the model can) until the last feature map is this "
                               "wide.", ge=1, le=1_024) = 7
    eval_splits: _option(tuple[str, ...], "Splits evaluated after each epoch, comma-separated.") = ("val", "shifted")
    cam: _option(str, "Map scored by the WSOL metrics after the last epoch: auto, classifier or attention.") = "auto"
    balanced_batches: _option(bool, "Seed 004: half of each batch from rows with collected targets, half "
                              "without.") = False
    pseudo_label_threshold: _option(float, "Read by the manifest builder (training/pseudo_labels.py).",
                                    ge=0, le=1) | None = None
    patch_cluster: _option(bool, "Seed 001's PatchCluster pseudo-labels (method patch).") = False
    cluster_d_positive: _option(float, "Cosine distance to a prototype at or below which a cell is a positive.",
                                ge=0, le=1) = 0.3
    cluster_d_negative: _option(float, "Cosine distance above which for every cell the image is a negative.",
                                ge=0, le=1) = 0.8
    scl_top_k: _option(int, "Method scl: classes whose heatmaps are kept per image.") = 10
    scl_momentum: _option(float, "Method scl: heatmap moving-average momentum.") = 0.9
    log_every: _option(int, "Steps between progress reports.", ge=1, le=1_000_000) = 10

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {', '.join(METHODS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        for name, value, allowed in (
            ("device", self.device, DEVICES), ("decode", self.decode, data_module.DECODE_MODES),
            ("point_loss", self.point_loss, POINT_LOSSES), ("cam", self.cam, wsol.CAM_SOURCES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        if self.pseudo_label_threshold is not None and not 0 < self.pseudo_label_threshold <= 1:
            raise ValueError(f"pseudo_label_threshold: {self.pseudo_label_threshold} is not in (0, 1]")
        if self.balanced_batches and self.batch_size < 2:
            raise ValueError("balanced_batches: needs batch_size of at least 2 (half labelled, half not)")
        if self.method == "scl" and self.decode != "pil":
            raise ValueError("decode: method scl reads each image's crop from the loader; use pil")
        if self.scl_top_k < 1 or not 0 <= self.scl_momentum < 1:
            raise ValueError(f"scl_top_k, scl_momentum: need k >= 1 and 0 <= momentum < 1, got {self.scl_top_k} "
                             f"and {self.scl_momentum}")
        if self.patch_cluster and self.method != "patch":
            raise ValueError(f"patch_cluster: needs method patch, not {self.method}")
        if not 0 <= self.cluster_d_positive < self.cluster_d_negative <= 1:
            raise ValueError(f"cluster_d_positive, cluster_d_negative: need 0 <= d+ < d- <= 1, got "
                             f"{self.cluster_d_positive} and {self.cluster_d_negative}")
        if self.cam == "attention" and self.method != "attentive":
            raise ValueError(f"cam: 'attention' needs method attentive, not {self.method}")
        self.crop_scale, self.crop_ratio = tuple(self.crop_scale), tuple(self.crop_ratio)
        self.eval_splits = tuple(self.eval_splits)

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def result_options(self):
        """The options that decide what the run computes (everything but RUN_PLACEMENT_OPTIONS)."""
        return {name: value for name, value in asdict(self).items() if name not in RUN_PLACEMENT_OPTIONS}

    def content_hash(self):
        options = json.dumps(self.result_options(), sort_keys=True, default=list)
        return hashlib.sha256(options.encode()).hexdigest()

    @classmethod
    def from_dict(cls, values):
        """The config of JSON-like values, checked against the options' types, bounds and choices."""
        known = {f.name for f in msgspec.structs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        try:
            return msgspec.convert(values, cls)
        except msgspec.ValidationError as error:
            raise ValueError(str(error)) from None


class MetricLogger:
    """Running sums of per-step values, kept on the device (no synchronisation per step), averaged over the images
    seen and reduced across processes on demand."""

    def __init__(self, device):
        self.device, self.sums, self.count = device, {}, 0

    def update(self, count, **values):
        self.count += count
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().double() * count

    def averages(self, distributed=False):
        names = sorted(self.sums)
        count = torch.tensor([float(self.count)], dtype=torch.float64, device=self.device)
        totals = torch.cat([torch.stack([self.sums[name] for name in names]), count]) if names else count
        if distributed:
            dist.all_reduce(totals)
        totals = totals.cpu()
        count = max(totals[-1].item(), 1)
        return {name: totals[i].item() / count for i, name in enumerate(names)}


@dataclass
class Context:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_process_group: bool = False

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def setup(config):
    """Device and process group: DDP when launched by torchrun (WORLD_SIZE > 1)."""
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
        owns = True
    return Context(device=device, rank=rank, world_size=world_size, owns_process_group=owns)


def autocast(config, device):
    if config.amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def unwrap(model):
    model = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def prepare_batch(batch, device, channels_last, decode_dataset=None):
    """Move a loader batch to device (decoding there on the device-decode path) and normalise the pixels."""
    if "data" in batch:
        batch = data_module.decode_batch_on_device(batch, decode_dataset, device)
    images = normalize(batch["pixels"].to(device, non_blocking=True), channels_last)
    return (
        images, batch["label"].to(device, non_blocking=True), batch["points"].to(device, non_blocking=True),
        batch["weights"].to(device, non_blocking=True),
    )


def train_one_epoch(model, criterion, optimizer, loader, device, *, scheduler=None, updates_before=0,
                    amp_context=None, channels_last=False, decode_dataset=None, first_step=0, total_steps=None,
                    on_step=None, should_stop=None, distributed=False, log_every=10):
    """One pass over loader; returns (averages of loss / cls / point / images_per_s, steps done, stopped).

    scheduler (timm) is stepped per update, from the run's update count: updates_before (the earlier epochs') + step.

    The loss is read back from the device (a synchronisation) only every log_every steps, when on_step(step,
    total_steps, loss, images_per_s, seconds_per_step) is called; should_stop is checked before every step
    (every log_every steps when distributed, where it is a collective).
    """
    model.train()
    metric_logger = MetricLogger(device)
    total_steps = total_steps if total_steps is not None else first_step + len(loader)
    step, started, images_seen = first_step, time.perf_counter(), 0
    for batch in loader:
        if (not distributed or step % log_every == 0) and stop_requested(should_stop, distributed, device):
            return metric_logger.averages(distributed), step, True
        images, labels, points, weights = prepare_batch(batch, device, channels_last, decode_dataset)
        with amp_context or contextlib.nullcontext():
            output = model(images)
            loss, parts = criterion(output, labels, points, weights, context=batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if scheduler is not None:
            scheduler.step_update(updates_before + step)
        images_seen += len(images)
        metric_logger.update(len(images), loss=loss, cls=parts["cls"], point=parts["point"])
        if step % log_every == 0 or step == total_steps:
            current = loss.item()
            if not math.isfinite(current):
                raise FloatingPointError(f"step {step}: loss is {current}")
            if on_step is not None:
                elapsed = time.perf_counter() - started
                on_step(step, total_steps, current, images_seen / max(elapsed, 1e-9), elapsed / (step - first_step))
    averages = metric_logger.averages(distributed)
    averages["images_per_s"] = images_seen / max(time.perf_counter() - started, 1e-9)
    return averages, step, False


def stop_requested(should_stop, distributed, device):
    """Rank 0's should_stop() decides for every process."""
    stop = bool(should_stop()) if should_stop is not None else False
    if distributed:
        flag = torch.tensor([int(stop)], device=device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    return stop


@torch.no_grad()
def evaluate(model, criterion, loader, device, manifest, *, amp_context=None, channels_last=False,
             decode_dataset=None, distributed=False, cam=None):
    """Loss, top-1 or mAP, and point localisation accuracy over a whole split (gathered across processes); with
    cam (a wsol.CAM_SOURCES map), also the WSOL metrics and their threshold curves where the split has boxes."""
    model.eval()
    rows, logits, points, losses = [], [], [], []
    localization = wsol.LocalizationScores()
    for batch in loader:
        if "data" in batch:
            batch = data_module.decode_batch_on_device(batch, decode_dataset, device)
        images, labels, targets, weights = prepare_batch(batch, device, channels_last)
        with amp_context or contextlib.nullcontext():
            output = model(images)
            loss, _ = criterion(output, labels, targets, weights)
        predicted = unwrap(model).predict_points(output, labels).cpu().numpy()
        crops = data_module.crops_of(batch)
        if cam:
            wsol.score_batch(localization, unwrap(model), output, batch["row"].numpy(), crops, manifest, cam)
        points.append(np.stack([crop.to_source(p) for crop, p in zip(crops, predicted)]))
        rows.append(batch["row"].numpy())
        logits.append(output["logits"].float().cpu().numpy())
        losses.append(loss.item() * len(images))
    shard = (
        np.concatenate(rows) if rows else np.zeros(0, np.int64),
        np.concatenate(logits) if logits else np.zeros((0, manifest.num_classes), np.float32),
        np.concatenate(points) if points else np.zeros((0, manifest.points_per_image, 2), np.float32),
        sum(losses), localization,
    )
    shards = [shard]
    if distributed:
        shards = [None] * dist.get_world_size()
        dist.all_gather_object(shards, shard)
    all_rows = np.concatenate([s[0] for s in shards])
    all_logits = np.concatenate([s[1] for s in shards])
    all_points = np.concatenate([s[2] for s in shards])
    results = metrics_module.split_metrics(manifest, all_rows, all_logits, all_points)
    results["loss"] = sum(s[3] for s in shards) / max(len(all_rows), 1)
    results.update(sum((s[4] for s in shards), wsol.LocalizationScores()).metrics(all_rows, all_logits))
    return results


def build_scheduler(optimizer, config, steps_per_epoch):
    """Linear warm-up then cosine decay to 0, in optimisation steps. Its learning rate is a function of the update
    count alone, so a resumed run sets it from the checkpoint's epoch and step (no scheduler state is kept)."""
    warmup = int(config.warmup_epochs * steps_per_epoch)
    total = max(config.epochs * steps_per_epoch, 1)
    return CosineLRScheduler(
        optimizer, t_initial=max(total - warmup, 1), warmup_t=warmup, warmup_lr_init=config.lr / max(warmup, 1),
        warmup_prefix=True, t_in_epochs=False,
    )


def save_checkpoint(out_dir, state, config):
    """Write checkpoint.pt (atomically) and config.json next to it."""
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT_NAME
    partial = out_dir / (CHECKPOINT_NAME + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    (out_dir / CONFIG_NAME).write_text(config.to_json())
    return path


def load_checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def check_resumable(state, checkpoint_path, manifest, config):
    """Refuse a checkpoint trained on other data or under another (resolved) config, naming what differs."""
    if state["manifest_hash"] != manifest.content_hash:
        raise ValueError(
            f"out_dir: {checkpoint_path} was trained on manifest {state['manifest_hash'][:16]}, "
            f"manifest_path is {manifest.content_hash[:16]}; resume with the same data or use another out_dir"
        )
    if state.get("config_hash") == config.content_hash():
        return
    saved = {name: value for name, value in state["config"].items() if name not in RUN_PLACEMENT_OPTIONS}
    wanted = json.loads(json.dumps(config.result_options(), default=list))
    saved = json.loads(json.dumps(saved, default=list))
    differences = [
        f"{name} {saved.get(name)!r} -> {wanted.get(name)!r}" for name in sorted(set(saved) | set(wanted))
        if saved.get(name) != wanted.get(name)
    ] or ["a checkpoint without a config hash (written by an older version)"]
    raise ValueError(
        f"out_dir: {checkpoint_path} was trained under another config ({'; '.join(differences)}); "
        "resume with the same options or use another out_dir"
    )


def run(config: TrainConfig, on_progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> dict:
    """Train (or resume) config's model; see the module docstring for what lands in config.out_dir.

    on_progress gets {"epoch", "epochs", "step", "steps", "loss", "images_per_s", "eta_s"} every log_every steps
    and at the end of each epoch; should_stop is checked between steps. Returns {"status": "succeeded" |
    "cancelled", "metrics": last finished epoch's record, "checkpoint": path, "history": every finished epoch's
    record, "config": the resolved TrainConfig as a dict}; a cancelled run also says the epoch (1-based) and step it
    stopped at.
    """
    context = setup(config)
    try:
        return _run(config, context, on_progress, should_stop)
    finally:
        if context.owns_process_group:
            dist.destroy_process_group()


def _run(config, context, on_progress, should_stop):
    device = context.device
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_module.read(config.manifest_path)
    pseudo_labels = manifest.pseudo_label_file()
    if pseudo_labels and context.is_main:
        (out_dir / PSEUDO_LABELS_NAME).write_text(json.dumps(pseudo_labels, indent=2))
    config = replace(
        config, model_kwargs=resolve_model_kwargs(config.model, config.img_size, config.min_feature_cells,
                                                  config.model_kwargs),
    )
    torch.manual_seed(config.seed)
    model = create_model(
        config.model, manifest.num_classes, manifest.points_per_image, config.method, config.checkpoint_path,
        config.model_kwargs,
    )
    if config.method == "scl" and (not manifest.multi_label or context.distributed):
        raise ValueError("method: scl trains COCO-style (multi-label) manifests in one process")
    if config.lambda_point is None:
        # scl: the spatial consistency term's weight; otherwise the paper's default for the backbone's size
        default = 1.0 if config.method == "scl" else default_lambda(manifest.kind, count_parameters(model.backbone))
        config = replace(config, lambda_point=default)
    lambda_point = config.lambda_point
    criterion = LuabLoss(
        config.method, manifest.multi_label, lambda_point, config.point_loss, config.huber_beta,
        config.label_smoothing, config.patch_focal_gamma,
    )
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    train_set = data_module.ManifestDataset(
        manifest, "train",
        (scl.SquareResizedCrop if config.method == "scl" else TrainTransform)(
            config.img_size, config.crop_scale, config.crop_ratio, config.hflip, config.color_jitter,
        ),
        config.seed, config.decode,
    )
    if len(train_set) == 0:
        raise ValueError(f"manifest_path: {config.manifest_path} has no train entries")
    if config.balanced_batches:
        labelled = (manifest.has_targets & ~manifest.pseudo_labelled)[train_set.rows]
        train_sampler = data_module.BalancedBatchSampler(
            labelled, config.batch_size, seed=config.seed, rank=context.rank, world_size=context.world_size,
        )
    else:
        train_sampler = data_module.EpochBatchSampler(
            len(train_set), config.batch_size, shuffle=True, seed=config.seed, rank=context.rank,
            world_size=context.world_size,
        )
    pin = device.type == "cuda"
    train_loader = data_module.make_loader(train_set, train_sampler, config.workers, pin)
    if config.method == "scl":
        criterion.spatial_consistency = scl.SpatialConsistency(
            train_set.rows, manifest.num_classes, config.scl_top_k, config.scl_momentum
        )
    cluster = None
    if config.patch_cluster:
        cluster = criterion.patch_cluster = patchcluster.PatchCluster(
            config.cluster_d_positive, config.cluster_d_negative, config.patch_focal_gamma
        )
        clicked = np.flatnonzero(manifest.has_targets[train_set.rows])
        prototype_loader = data_module.make_loader(
            data_module.ManifestDataset(manifest, "train", EvalTransform(config.img_size, config.test_crop_ratio)),
            [clicked[i:i + config.batch_size].tolist() for i in range(0, len(clicked), config.batch_size)],
            config.workers, pin,
        )
    eval_loaders = {}
    eval_transform = (scl.SquareResize(config.img_size) if config.method == "scl"
                      else EvalTransform(config.img_size, config.test_crop_ratio))
    for split in config.eval_splits:
        eval_set = data_module.ManifestDataset(manifest, split, eval_transform, config.seed, config.decode)
        if len(eval_set):
            sampler = data_module.EpochBatchSampler(
                len(eval_set), config.batch_size, shuffle=False, rank=context.rank, world_size=context.world_size,
                pad=False,
            )
            eval_loaders[split] = (eval_set, data_module.make_loader(eval_set, sampler, config.workers, pin))

    steps_per_epoch = len(train_sampler)
    optimizer = create_optimizer_v2(model, "adamw", lr=config.lr, weight_decay=config.weight_decay)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    start_epoch, start_step, history = 0, 0, []
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        check_resumable(state, checkpoint_path, manifest, config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_step, history = state["epoch"], state["step"], state["history"]
        if cluster is not None:
            cluster.prototypes = state.get("prototypes")
        if criterion.spatial_consistency is not None:
            criterion.spatial_consistency.load_state_dict(state["heatmaps"])
        logger.info("resuming %s at epoch %d step %d", checkpoint_path, start_epoch, start_step)
        scheduler.step_update(start_epoch * steps_per_epoch + start_step)

    trained = model
    if context.distributed:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        trained = torch.compile(trained)
    amp_context = autocast(config, device)
    metrics_path = out_dir / METRICS_NAME

    def state(epoch, step):
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epoch": epoch, "step": step, "history": history, "config": asdict(config),
            "class_names": manifest.class_names, "kind": manifest.kind, "manifest_hash": manifest.content_hash,
            "lambda_point": lambda_point, "config_hash": config.content_hash(),
            "prototypes": cluster.prototypes if cluster is not None else None,
            "heatmaps": criterion.spatial_consistency.state_dict() if criterion.spatial_consistency else None,
        }

    for epoch in range(start_epoch, config.epochs):
        first_step = start_step if epoch == start_epoch else 0
        train_sampler.set_epoch(epoch, skip_batches=first_step)
        train_set.set_epoch(epoch)
        if cluster is not None:
            if epoch >= 1 and first_step == 0:  # a resumed epoch keeps the prototypes it started with
                cluster.prototypes = patchcluster.class_prototypes(
                    model, prototype_loader, device, manifest.num_classes, manifest.multi_label
                )
            cluster.positive_cells = cluster.negative_labels = 0

        def on_step(step, steps, loss, images_per_s, seconds_per_step, epoch=epoch):
            if on_progress is None or not context.is_main:
                return
            remaining = (steps - step) + (config.epochs - epoch - 1) * steps
            on_progress({
                "epoch": epoch + 1, "epochs": config.epochs, "step": step, "steps": steps, "loss": loss,
                "images_per_s": images_per_s, "eta_s": remaining * seconds_per_step,
            })

        train_stats, step, stopped = train_one_epoch(
            trained, criterion, optimizer, train_loader, device, scheduler=scheduler,
            updates_before=epoch * steps_per_epoch, amp_context=amp_context,
            channels_last=channels_last, decode_dataset=train_set, first_step=first_step,
            total_steps=steps_per_epoch, on_step=on_step, should_stop=should_stop, distributed=context.distributed,
            log_every=config.log_every,
        )
        if stopped:
            path = save_checkpoint(out_dir, state(epoch, step), config) if context.is_main else checkpoint_path
            logger.info("cancelled at epoch %d step %d; saved %s", epoch + 1, step, path)
            return {
                "status": "cancelled", "metrics": history[-1] if history else {}, "checkpoint": str(path),
                "history": history, "epoch": epoch + 1, "step": step, "config": asdict(config),
            }
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
        record.update({f"train_{name}": value for name, value in train_stats.items()})
        if criterion.spatial_consistency is not None and criterion.spatial_consistency.store is not None:
            store = criterion.spatial_consistency.store
            record.update(train_heatmap_bytes=store.nbytes, train_heatmap_dense_bytes=store.dense_nbytes)
        if cluster is not None:
            record.update(train_pseudo_positive_cells=cluster.positive_cells,
                          train_pseudo_negative_labels=cluster.negative_labels)
        for split, (eval_set, loader) in eval_loaders.items():
            split_results = evaluate(
                trained, criterion, loader, device, manifest, amp_context=amp_context, channels_last=channels_last,
                decode_dataset=eval_set, distributed=context.distributed,
                cam=config.cam if epoch + 1 == config.epochs else None,
            )
            record.update({f"{split}_{name}": value for name, value in split_results.items()})
        history.append(record)
        if context.is_main:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            save_checkpoint(out_dir, state(epoch + 1, 0), config)
        logger.info("epoch %d/%d: %s", epoch + 1, config.epochs,
                    {name: value for name, value in record.items() if not isinstance(value, dict)})
    return {
        "status": "succeeded", "metrics": history[-1] if history else {}, "checkpoint": str(checkpoint_path),
        "history": history, "config": asdict(config),
    }


def main(argv=None):
    """``python -m training.ml.engine CONFIG.json`` (or under ``torchrun --nproc_per_node=N -m training.ml.engine``)."""
    import argparse

    parser = argparse.ArgumentParser(description="Train from a TrainConfig JSON file (a run folder's config.json).")
    parser.add_argument("config", help="JSON file with TrainConfig fields")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = TrainConfig.from_dict(json.loads(Path(arguments.config).read_text()))
    result = run(config, on_progress=lambda progress: logger.info("progress %s", progress))
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {"status": result["status"], "checkpoint": result["checkpoint"], "metrics": result["metrics"]}
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
