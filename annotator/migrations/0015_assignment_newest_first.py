"""An index the review console's table pages on: a batch's assignments newest submissions first (NULLS LAST), so a
page reads its 100 rows from the index instead of sorting the whole batch. PostgreSQL only: SQLite cannot order an
index NULLS LAST (and a development database there is small)."""
from django.db import migrations

INDEX = "assignment_newest_first"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "annotator_assignment" '
                              '("submitted_at" DESC NULLS LAST, "id" DESC)')


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):

    dependencies = [
        ("annotator", "0014_key_prefix_indexes"),
    ]

    operations = [migrations.RunPython(create, drop)]
