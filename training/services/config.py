"""The options a job's config may set: TrainConfig's (training/ml/engine.py, a msgspec Struct) but those the service
fills in. The Struct is the one definition: msgspec validates a config against it, and the schema the API and the
admin's form use is read from it (msgspec.inspect)."""
import dataclasses
import re

import msgspec
import msgspec.inspect
from django.core.exceptions import ValidationError

# TrainConfig fields that the service sets for every run; a job's config may not choose them.
SERVICE_CONFIG_FIELDS = ("manifest_path", "out_dir")
# The Python type a form field and an error message name for each kind of msgspec type.
_KINDS = {
    msgspec.inspect.IntType: int, msgspec.inspect.FloatType: float, msgspec.inspect.StrType: str,
    msgspec.inspect.LiteralType: str, msgspec.inspect.BoolType: bool, msgspec.inspect.TupleType: tuple,
    msgspec.inspect.VarTupleType: tuple, msgspec.inspect.DictType: dict,
}


def train_config_class():
    from training.ml.engine import TrainConfig

    return TrainConfig


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


def _option(field):
    info, nullable, meta = field.type, False, {}
    while isinstance(info, (msgspec.inspect.Metadata, msgspec.inspect.UnionType)):
        if isinstance(info, msgspec.inspect.UnionType):  # T | None
            nullable = True
            info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
        else:  # engine._option's help (description) and choices in their order (msgspec sorts a Literal's values)
            meta = {**(info.extra_json_schema or {}), **(info.extra or {})}
            info = info.type
    bounds = (info.ge, info.le) if getattr(info, "ge", None) is not None else ()
    default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    return TrainOption(name=field.name, kind=_KINDS[type(info)], nullable=nullable, default=default,
                       choices=tuple(meta.get("choices", ())), bounds=bounds, help=meta.get("description", ""))


def train_config_schema():
    """The options of a job's config, in TrainConfig's order, with their type, default, choices, bounds and help."""
    fields = msgspec.inspect.type_info(train_config_class()).fields
    return [_option(field) for field in fields if field.name not in SERVICE_CONFIG_FIELDS]


def train_config_options():
    """Names of the TrainConfig options a job's config may set (all but the ones the service fills in)."""
    return [option.name for option in train_config_schema()]


def validate_train_config(config):
    """Raise ValidationError naming each unknown option of a job's config, or msgspec's or the engine's objection."""
    if not isinstance(config, dict):
        raise ValidationError({"config": "must be an object of TrainConfig options"})
    options = {option.name: option for option in train_config_schema()}
    unknown = {
        f"config.{name}": f"unknown option; known: {', '.join(sorted(options))}"
        for name in config if name not in options
    }
    if unknown:
        raise ValidationError(unknown)
    # Each option on its own first, so that every bad one is named at once (msgspec stops at the first); then all
    # together, for the engine's objections to several options at once (__post_init__).
    problems = {}
    for name, value in config.items():
        problem = _objection({name: value}, config, options)
        if problem and problem.keys() != {"config"}:
            problems.update(problem)
    if problems:
        raise ValidationError(problems)
    problem = _objection(config, config, options)
    if problem:
        raise ValidationError(problem)


def _objection(values, config, options):
    try:
        msgspec.convert({**values, "manifest_path": "", "out_dir": ""}, train_config_class())
    except msgspec.ValidationError as error:
        return _in_our_words(str(error), config, options)
    return None


def _in_our_words(message, config, options):
    """{field path: reason} for msgspec's message: one option's problem ("at `$.epochs`") in the words the API has
    always used, or the engine's objection to several options together (__post_init__) under "config"."""
    where = re.fullmatch(r"(?P<problem>.*) - at `\$\.(?P<name>\w+)[^`]*`", message)
    if where is None or where["name"] not in config:
        return {"config": message}
    option, value = options[where["name"]], config[where["name"]]
    if option.choices and where["problem"].startswith("Invalid enum value"):
        reason = f"{value!r} is not one of {', '.join(option.choices)}"
    elif option.bounds and re.search(r"[<>]=? ", where["problem"]):
        reason = f"{value} is outside [{option.bounds[0]}, {option.bounds[1]}]"
    else:
        reason = f"{value!r} is not of type {option.kind.__name__}"
    return {f"config.{option.name}": reason}
