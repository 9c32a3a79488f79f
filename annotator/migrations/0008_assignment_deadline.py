"""Assignments get a deadline (accepted + the batch's assignment duration; open ones past it expire and free their
place) and the keyed hash of the address that took them (a limit on the open places one address holds)."""
from datetime import timedelta

from django.db import migrations, models

DEFAULT_ASSIGNMENT_DURATION_S = 3600


def set_deadlines_of_open_work(apps, schema_editor):
    Assignment = apps.get_model("annotator", "Assignment")
    Batch = apps.get_model("annotator", "Batch")
    for batch in Batch.objects.filter(hits__assignments__state__in=("accepted", "in_progress")).distinct():
        seconds = (batch.provider_config or {}).get("assignment_duration", DEFAULT_ASSIGNMENT_DURATION_S)
        duration = timedelta(seconds=int(seconds))
        open_work = Assignment.objects.filter(hit__batch=batch, state__in=("accepted", "in_progress"))
        for assignment in open_work.only("pk", "accepted_at"):
            Assignment.objects.filter(pk=assignment.pk).update(deadline=assignment.accepted_at + duration)


class Migration(migrations.Migration):

    dependencies = [
        ("annotator", "0007_hit_candidate_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="deadline",
            field=models.DateTimeField(
                blank=True, db_index=True, null=True,
                help_text="Not submitted by then, it expires and frees its place (accepted + the batch's assignment duration).",
            ),
        ),
        migrations.AddField(
            model_name="assignment",
            name="entry_address",
            field=models.CharField(
                blank=True, default="", max_length=32,
                help_text="Keyed hash of the client address that took it (limits the open places one address holds).",
            ),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(fields=["entry_address", "state"], name="annotator_a_entry_a_93ea44_idx"),
        ),
        migrations.RunPython(set_deadlines_of_open_work, migrations.RunPython.noop),
    ]
