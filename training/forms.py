"""The admin's "Add training job" form: one field per TrainConfig option, built from train_config_schema(),
the schema the API validates with; only options changed from their defaults go into the job's config."""
import functools

from django import forms
from django.core.exceptions import ValidationError

from annotator.models import Batch

from .services.config import train_config_schema, validate_train_config
from .models import TrainingJob


class BatchSelect(forms.SelectMultiple):
    """Each batch option says its dataset (data-dataset), so the page lists only the chosen dataset's batches."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-dataset"] = str(instance.dataset_id)
        return option


def _listed(text, kind):
    """'0.08, 1.0' -> [0.08, 1.0]; 'val, shifted' -> ['val', 'shifted']."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if kind is str:
        return parts
    try:
        return [float(part) for part in parts]
    except ValueError:
        raise ValidationError(f"{text!r}: give numbers separated by commas") from None


def _option_field(option):
    common = {"required": False, "help_text": option.help, "label": option.name}
    if option.choices:
        return forms.ChoiceField(choices=[(c, c) for c in option.choices], initial=option.default, **common)
    if option.kind is bool:
        if option.nullable:
            return forms.NullBooleanField(initial=option.default, **common)
        return forms.BooleanField(initial=option.default, **common)
    if option.kind is int:
        low, high = option.bounds or (None, None)
        return forms.IntegerField(initial=option.default, min_value=low, max_value=high, **common)
    if option.kind is float:
        low, high = option.bounds or (None, None)
        return forms.FloatField(initial=option.default, min_value=low, max_value=high, **common)
    if option.kind is tuple:
        return forms.CharField(initial=", ".join(str(v) for v in option.default), **common)
    if option.kind is dict:
        return forms.JSONField(initial=option.default, **common)
    return forms.CharField(initial=option.default, **common)


class TrainingJobFormBase(forms.ModelForm):
    class Meta:
        model = TrainingJob
        fields = ["dataset", "batches"]
        widgets = {"batches": BatchSelect}
        help_texts = {"batches": "Approved work of these batches only (none: every batch of the dataset). Only the "
                                 "chosen dataset's batches are listed."}

    option_names = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["batches"].queryset = Batch.objects.select_related("dataset").order_by("dataset__name", "name")
        self.fields["batches"].required = False

    def clean(self):
        cleaned = super().clean()
        dataset, batches = cleaned.get("dataset"), cleaned.get("batches") or []
        foreign = [batch.name for batch in batches if dataset is not None and batch.dataset_id != dataset.pk]
        if foreign:
            self.add_error("batches", f"not batches of dataset {dataset.name}: {', '.join(foreign)}")
        config = {}
        for option in train_config_schema():
            if option.name not in self.fields or option.name in self.errors:
                continue
            value = cleaned.get(option.name)
            if option.kind is tuple:
                try:
                    value = _listed(value, type(option.default[0])) if value else list(option.default)
                except ValidationError as error:
                    self.add_error(option.name, error)
                    continue
                if value == list(option.default):
                    continue
            elif value in (None, "") and not option.nullable:
                continue
            if value != option.default:
                config[option.name] = value
        try:
            validate_train_config(config)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                name = field.removeprefix("config.")
                self.add_error(name if name in self.fields else None, problems)
        cleaned["config"] = config
        return cleaned


@functools.cache
def training_job_add_form():
    """The form class (built once: the schema comes from the engine, imported on first use)."""
    fields = {option.name: _option_field(option) for option in train_config_schema()}
    return type("TrainingJobAddForm", (TrainingJobFormBase,), {**fields, "option_names": tuple(fields)})
