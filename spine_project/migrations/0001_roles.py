"""The roles of SPEC §6: groups `viewer` (read) and `operator` (read and act)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER = [
    ("executions", "view_execution"),
    ("executions", "view_executionevent"),
    ("executions", "view_lane"),
    ("dlq", "view_deadletter"),
]
OPERATOR = [
    *VIEWER,
    ("executions", "submit_execution"),
    ("executions", "retry_execution"),
    ("executions", "cancel_execution"),
    ("executions", "pause_lane"),
    ("dlq", "replay_deadletter"),
    ("dlq", "resolve_deadletter"),
]


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; create them now so the groups
    # can hold them on a fresh database.
    for label in ("executions", "dlq"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # the historical app stub lacks it; create_permissions asks
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in (("viewer", VIEWER), ("operator", OPERATOR)):
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "operator"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("executions", "0002_lanes"),
        ("dlq", "0001_initial"),
    ]
    operations = [migrations.RunPython(create_roles, drop_roles)]
