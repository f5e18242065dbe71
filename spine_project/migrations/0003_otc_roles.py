"""OTC tables: viewers and operators read them (SPEC §6)."""

from django.db import migrations

from spine_project.roles import OPERATOR, VIEWER, grant, revoke

OTC_READ = [
    ("otc", "view_rawtrade"),
    ("otc", "view_trade"),
    ("otc", "view_metricsdaily"),
    ("otc", "view_rejectedrow"),
]
GRANTS = {VIEWER: OTC_READ, OPERATOR: OTC_READ}


class Migration(migrations.Migration):
    dependencies = [
        ("spine_project", "0002_schedule_roles"),
        ("otc", "0001_initial"),
    ]
    operations = [
        migrations.RunPython(
            lambda apps, _: grant(apps, GRANTS), lambda apps, _: revoke(apps, GRANTS)
        )
    ]
