"""Each HIT gets a secret of its own, from which its pages make the ids the worker's browser sees for their images
(annotator.candidates): existing HITs get one each, as new ones do."""
import secrets

from django.db import migrations, models

import annotator.models


def give_each_hit_a_key(apps, schema_editor):
    Hit = apps.get_model("annotator", "Hit")
    hits = list(Hit.objects.filter(candidate_key="").only("pk"))
    for hit in hits:
        hit.candidate_key = secrets.token_hex(16)
    Hit.objects.bulk_update(hits, ["candidate_key"], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("annotator", "0006_event_request_types"),
    ]

    operations = [
        migrations.AddField(
            model_name="hit",
            name="candidate_key",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(give_each_hit_a_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="hit",
            name="candidate_key",
            field=models.CharField(
                default=annotator.models.new_candidate_key, editable=False, max_length=64,
                help_text="Secret of the ids its pages give their images (annotator.candidates); never sent to a browser.",
            ),
        ),
    ]
