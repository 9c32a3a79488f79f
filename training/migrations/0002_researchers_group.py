"""The "researchers" group: may launch, cancel and promote training runs through the API."""
from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

RESEARCHERS_GROUP = "researchers"


def create_researchers_group(apps, schema_editor):
    # Permissions are normally created after all migrations; this group needs its own now.
    create_permissions(global_apps.get_app_config("training"), apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=RESEARCHERS_GROUP)
    group.permissions.add(
        Permission.objects.get(content_type__app_label="training", codename="manage_training")
    )


def delete_researchers_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=RESEARCHERS_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_researchers_group, delete_researchers_group)]
