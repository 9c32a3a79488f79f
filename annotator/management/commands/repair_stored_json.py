"""Find and repair byproduct rows stored before bodies were limited in depth (issue 14): their JSON, nested deeper
than MAX_JSON_DEPTH levels in fields the schemas do not know, broke every page that read them (the worker's
`GET pages/<i>`, the admin's EventBatch, PageSubmission and Assignment pages) with a RecursionError.

Each such value keeps everything down to MAX_JSON_DEPTH levels; what lies deeper becomes null. Run it once after
upgrading; it changes nothing on a second run.
"""
import json

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db.models import TextField
from django.db.models.functions import Cast

from annotator.models import ByproductJSONField
from annotator.worker.validation import MAX_JSON_DEPTH, nesting_depth, prune_nesting


def byproduct_columns():
    """(model, field name) of every column that keeps JSON as the client sent it."""
    return [(model, field.name) for model in apps.get_app_config("annotator").get_models()
            for field in model._meta.concrete_fields if isinstance(field, ByproductJSONField)]


def repair_stored_json(batch_size=500):
    """Prune every too-deep stored value; returns {"Model.field": rows repaired}."""
    repaired = {}
    for model, name in byproduct_columns():
        # Read as text: decoding a too-deep value is exactly what fails.
        rows = model.objects.annotate(stored_text=Cast(name, TextField())).values_list("pk", "stored_text")
        count = 0
        for pk, text in rows.iterator(chunk_size=batch_size):
            if text is None or nesting_depth(text.encode()) <= MAX_JSON_DEPTH:
                continue
            model.objects.filter(pk=pk).update(**{name: json.loads(prune_nesting(text))})
            count += 1
        repaired[f"{model.__name__}.{name}"] = count
    return repaired


class Command(BaseCommand):
    help = f"Prune stored byproduct JSON nested deeper than {MAX_JSON_DEPTH} levels (rows stored before the limit)."

    def handle(self, *args, **options):
        repaired = repair_stored_json()
        for column, count in repaired.items():
            if count:
                self.stdout.write(f"{column}: {count} row(s) repaired")
        self.stdout.write(f"{sum(repaired.values())} row(s) repaired in all")
