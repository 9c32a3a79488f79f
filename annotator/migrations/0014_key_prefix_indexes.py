"""Indexes for the admin's search by key prefix (annotator.admin.BigTableAdmin.get_search_results): `key LIKE 'q%'`
uses a btree index only in the C collation or with a pattern operator class, so on PostgreSQL each searched key
gets a varchar_pattern_ops index (it serves equality too). Other databases get none: SQLite's LIKE is
case-insensitive and scans."""

from django.db import migrations

# (index, table, column); the models' state is unchanged: these are PostgreSQL-only physical indexes.
INDEXES = [
    ("image_key_prefix", "annotator_image", "key"),
    ("assignment_external_id_prefix", "annotator_assignment", "external_id"),
    ("hit_external_id_prefix", "annotator_hit", "external_id"),
]


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, column in INDEXES:
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}" varchar_pattern_ops)')


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):

    dependencies = [
        ('annotator', '0013_image_display_file_2x'),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes),
    ]
