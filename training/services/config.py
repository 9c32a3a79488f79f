"""The options a job's config may set: TrainConfig's (training/ml/engine.py) but those the service fills in."""
import dataclasses
import types
import typing

from django.core.exceptions import ValidationError

# TrainConfig fields that the service sets for every run; a job's config may not choose them.
SERVICE_CONFIG_FIELDS = ("manifest_path", "out_dir")


def train_config_class():
    from training.ml.engine import TrainConfig

    return TrainConfig


def train_config_options():
    """Names of the TrainConfig options a job's config may set (all but the ones the service fills in)."""
    return [option.name for option in train_config_schema()]


# JSON types each TrainConfig annotation accepts, and bounds that keep a typo from queueing a run that never ends.
_OPTION_JSON_TYPES = {int: (int,), float: (int, float), str: (str,), bool: (bool,), tuple: (list,), dict: (dict,)}
_OPTION_BOUNDS = {
    "epochs": (1, 10_000), "batch_size": (1, 65_536), "img_size": (16, 4_096), "workers": (0, 256),
    "log_every": (1, 1_000_000), "lr": (0, 10), "weight_decay": (0, 10), "lambda_point": (0, 1e6),
    "pseudo_label_threshold": (0, 1), "cluster_d_positive": (0, 1), "cluster_d_negative": (0, 1),
    "min_feature_cells": (1, 1_024),
}
# What each option does, in the words the admin's form shows beside it.
_OPTION_HELP = {
    "model": "timm model name (test_resnet: a tiny model for trying things on the CPU).",
    "method": "baseline: labels only; luab: plus the point loss on the clicks (seed 000); attentive: point-guided "
              "pooling; patch: patch-level point loss (seed 001).",
    "epochs": "Passes over the training images.",
    "lambda_point": "Weight of the point loss; empty: seed 000's default for the data kind and backbone size.",
    "point_loss": "smooth_l1 (Huber) or mse.",
    "huber_beta": "Beta of the Smooth-L1 point loss.",
    "batch_size": "Images per step, per process.",
    "lr": "Learning rate.",
    "weight_decay": "Weight decay.",
    "warmup_epochs": "Epochs of learning-rate warm-up.",
    "label_smoothing": "Label smoothing of the classification loss.",
    "img_size": "Training crop size in pixels.",
    "crop_scale": "Random-resized-crop area range: two numbers, e.g. 0.08, 1.0.",
    "crop_ratio": "Random-resized-crop aspect-ratio range: two numbers.",
    "hflip": "Probability of a horizontal flip (the points move with it).",
    "color_jitter": "Colour jitter strength (0: off).",
    "test_crop_ratio": "Share of the image kept by the centre crop at evaluation.",
    "patch_focal_gamma": "Focal gamma of the patch-level point loss (method patch).",
    "seed": "Random seed.",
    "device": "auto: the GPU when there is one, else the CPU.",
    "amp": "bf16 autocast on the GPU (ignored on the CPU).",
    "channels_last": "Channels-last memory format; unknown: on the GPU only.",
    "compile": "torch.compile the model.",
    "workers": "Data loader processes.",
    "decode": "pil: JPEG decoding by Pillow on the CPU; device: on the GPU.",
    "checkpoint_path": "Local backbone weights to start from (nothing is downloaded).",
    "model_kwargs": "Extra timm.create_model arguments, a JSON object.",
    "eval_splits": "Splits evaluated after each epoch, comma-separated.",
    "log_every": "Steps between progress reports.",
}


@dataclasses.dataclass(frozen=True)
class TrainOption:
    """One option a job's config may set: what the API validates and the admin's form offers."""

    name: str
    kind: type  # int, float, str, bool, tuple or dict
    nullable: bool
    default: object
    choices: tuple
    bounds: tuple
    help: str


def _option_choices():
    from training.ml.data import DECODE_MODES
    from training.ml.losses import POINT_LOSSES
    from training.ml.models import METHODS

    return {"method": METHODS, "point_loss": POINT_LOSSES, "decode": DECODE_MODES, "device": ("auto", "cpu", "cuda")}


def train_config_schema():
    """The options of a job's config, in TrainConfig's order, with their type, default, choices, bounds and help."""
    config_class = train_config_class()
    hints = typing.get_type_hints(config_class)
    choices = _option_choices()
    schema = []
    for field in dataclasses.fields(config_class):
        if field.name in SERVICE_CONFIG_FIELDS:
            continue
        annotation = hints[field.name]
        allowed = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
            else (annotation,)
        kinds = [typing.get_origin(a) or a for a in allowed if a is not type(None)]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        schema.append(TrainOption(
            name=field.name, kind=kinds[0], nullable=type(None) in allowed, default=default,
            choices=tuple(choices.get(field.name, ())), bounds=_OPTION_BOUNDS.get(field.name, ()),
            help=_OPTION_HELP.get(field.name, ""),
        ))
    return schema


def _option_problem(option, value):
    """Why `value` cannot be the option (wrong JSON type, out of bounds, not a choice), or None."""
    if value is None:
        return None if option.nullable else "must not be null"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (isinstance(value, _OPTION_JSON_TYPES[option.kind]) and (
            is_number or not isinstance(value, bool) or option.kind is bool)):
        return f"{value!r} is not of type {option.kind.__name__}"
    if option.bounds and not option.bounds[0] <= value <= option.bounds[1]:
        return f"{value} is outside [{option.bounds[0]}, {option.bounds[1]}]"
    if option.choices and value not in option.choices:
        return f"{value!r} is not one of {', '.join(option.choices)}"
    return None


def validate_train_config(config):
    """Raise ValidationError naming each unknown option of a job's config, or the engine's objection to it."""
    if not isinstance(config, dict):
        raise ValidationError({"config": "must be an object of TrainConfig options"})
    options = {option.name: option for option in train_config_schema()}
    unknown = {
        f"config.{name}": f"unknown option; known: {', '.join(sorted(options))}"
        for name in config if name not in options
    }
    if unknown:
        raise ValidationError(unknown)
    wrong = {
        f"config.{name}": why for name, value in config.items() if (why := _option_problem(options[name], value))
    }
    if wrong:
        raise ValidationError(wrong)
    try:
        train_config_class()(manifest_path="", out_dir="", **config)
    except (TypeError, ValueError) as error:
        raise ValidationError({"config": str(error)}) from None
