"""Raw blocks (otc 0003) replace raw lines: viewers and operators read them instead.

The permission on the removed model stays in the table (Django keeps permissions of deleted
models until `remove_stale_contenttypes`); the groups give it up here and get it back on reverse.
"""

from django.db import migrations

from spine_project.roles import OPERATOR, VIEWER, grant, revoke

BLOCKS = {VIEWER: [("otc", "view_rawblock")], OPERATOR: [("otc", "view_rawblock")]}
LINES = {VIEWER: [("otc", "view_rawtrade")], OPERATOR: [("otc", "view_rawtrade")]}


def forward(apps, schema_editor):
    grant(apps, BLOCKS)
    revoke(apps, LINES)


def backward(apps, schema_editor):
    revoke(apps, BLOCKS)
    # The model is not back yet at this point (otc 0003 is undone after this), so neither is
    # its permission if the table was emptied since: make it, as Django would.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label="otc", model="rawtrade")
    Permission.objects.get_or_create(
        content_type=content_type, codename="view_rawtrade", defaults={"name": "Can view raw trade"}
    )
    grant(apps, LINES)


class Migration(migrations.Migration):
    dependencies = [
        ("spine_project", "0004_raw_capture_roles"),
        ("otc", "0003_raw_blocks"),
    ]
    operations = [migrations.RunPython(forward, backward)]
