"""Schedules: viewers read them, operators edit them (SPEC §6)."""

from django.db import migrations

from spine_project.roles import OPERATOR, VIEWER, grant, revoke

GRANTS = {
    VIEWER: [("executions", "view_schedule")],
    OPERATOR: [
        ("executions", "view_schedule"),
        ("executions", "add_schedule"),
        ("executions", "change_schedule"),
        ("executions", "delete_schedule"),
    ],
}


class Migration(migrations.Migration):
    dependencies = [
        ("spine_project", "0001_roles"),
        ("executions", "0003_schedule"),
    ]
    operations = [
        migrations.RunPython(lambda apps, _: grant(apps, GRANTS), lambda apps, _: revoke(apps, GRANTS))
    ]
