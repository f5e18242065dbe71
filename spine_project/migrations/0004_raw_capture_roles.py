"""Raw captures (otc 0002): viewers and operators read them, as they read the raw lines."""

from django.db import migrations

from spine_project.roles import OPERATOR, VIEWER, grant, revoke

GRANTS = {VIEWER: [("otc", "view_rawcapture")], OPERATOR: [("otc", "view_rawcapture")]}


class Migration(migrations.Migration):
    dependencies = [
        ("spine_project", "0003_otc_roles"),
        ("otc", "0002_raw_captures"),
    ]
    operations = [
        migrations.RunPython(
            lambda apps, _: grant(apps, GRANTS), lambda apps, _: revoke(apps, GRANTS)
        )
    ]
