from django.db import migrations


def create_lanes(apps, schema_editor):
    Lane = apps.get_model("executions", "Lane")
    for name in ("normal", "backfill"):
        Lane.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("executions", "0001_initial")]
    operations = [migrations.RunPython(create_lanes, migrations.RunPython.noop)]
