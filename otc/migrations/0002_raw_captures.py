"""Raw lines keep their provenance once per capture (issue 8).

`otc_trades_raw` carried tier, week, venue type, source, source name, a line hash, the execution
and the capture time on every line, with four indexes; landing a 1M-line week spent 4.5 s there.
Now a capture (`otc_raw_captures`) holds the provenance and a lines' content hash, and a line is
its capture, number and text. Lines already landed are grouped into captures by the provenance
they carried: one capture per earlier ingest, holding the lines that ingest added. The first
capture of a source holds all its lines, so re-ingesting that unchanged file appends nothing;
a file that changed since lands once more in full, because the capture of its change holds only
the lines that changed. Hashes are computed as the landing computes them. Reversible, also with
rows in the tables.
"""

import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PROVENANCE = ("tier", "week", "venue_type", "source", "source_name", "execution_id", "captured_at")


def group_lines_into_captures(apps, schema_editor):
    RawCapture = apps.get_model("otc", "RawCapture")
    RawTrade = apps.get_model("otc", "RawTrade")
    groups = RawTrade.objects.values(*PROVENANCE).distinct().order_by("captured_at", "source_name")
    for group in list(groups):
        lines = RawTrade.objects.filter(capture__isnull=True, **group)
        digest, count = hashlib.sha256(), 0
        numbered = lines.order_by("line_number").values_list("line_number", "raw_line")
        for number, text in numbered.iterator(chunk_size=10_000):
            digest.update(b"%d\t%s\n" % (number, text.encode()))
            count += 1
        capture = RawCapture.objects.create(
            **group, content_hash=digest.hexdigest(), line_count=count
        )
        lines.update(capture=capture)


def spread_captures_over_lines(apps, schema_editor):
    """The reverse: each capture's provenance back onto its lines, and a line hash.

    The hash is BLAKE2b-128 of the stored text: the line's bytes for a line that was valid UTF-8,
    the escaped text otherwise (the bytes themselves are not kept).
    """
    RawCapture = apps.get_model("otc", "RawCapture")
    RawTrade = apps.get_model("otc", "RawTrade")
    for capture in RawCapture.objects.iterator():
        RawTrade.objects.filter(capture=capture).update(
            **{name: getattr(capture, name) for name in PROVENANCE}
        )
    batch = []
    for line in RawTrade.objects.only("pk", "raw_line").iterator(chunk_size=10_000):
        line.line_hash = hashlib.blake2b(line.raw_line.encode(), digest_size=16).hexdigest()
        batch.append(line)
        if len(batch) == 5_000:
            RawTrade.objects.bulk_update(batch, ["line_hash"])
            batch = []
    RawTrade.objects.bulk_update(batch, ["line_hash"])


class Migration(migrations.Migration):
    dependencies = [("otc", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="RawCapture",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("tier", models.CharField(choices=[("T1", "NMS Tier 1"), ("T2", "NMS Tier 2"), ("OTCE", "OTC")], max_length=4)),
                ("week", models.DateField(help_text="Monday of the trading week")),
                ("venue_type", models.CharField(choices=[("ats", "ATS"), ("non_ats", "Non-ATS")], max_length=8)),
                ("source", models.CharField(help_text="file or finra_api", max_length=20)),
                ("source_name", models.CharField(help_text="file name, or the API dataset", max_length=300)),
                ("content_hash", models.CharField(help_text="SHA-256 of the landed lines, each as: line number, tab, line, newline", max_length=64)),
                ("line_count", models.PositiveIntegerField()),
                ("execution_id", models.UUIDField(blank=True, null=True)),
                ("captured_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "db_table": "otc_raw_captures",
                "ordering": ["-captured_at", "-id"],
                "indexes": [
                    models.Index(fields=["captured_at"], name="otc_capture_captured"),
                    models.Index(fields=["execution_id"], name="otc_capture_execution"),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("tier", "week", "venue_type", "source_name", "content_hash"), name="otc_capture_once"),
                ],
            },
        ),
        migrations.AddField(
            model_name="rawtrade",
            name="capture",
            field=models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="lines", to="otc.rawcapture"),
        ),
        # Nullable while the data moves, so that the reverse can add the columns back to filled
        # tables before it fills them; made NOT NULL again when reversed, after the fill.
        *[
            migrations.AlterField(model_name="rawtrade", name=name, field=field)
            for name, field in [
                ("tier", models.CharField(choices=[("T1", "NMS Tier 1"), ("T2", "NMS Tier 2"), ("OTCE", "OTC")], max_length=4, null=True)),
                ("week", models.DateField(help_text="Monday of the trading week", null=True)),
                ("venue_type", models.CharField(choices=[("ats", "ATS"), ("non_ats", "Non-ATS")], max_length=8, null=True)),
                ("source", models.CharField(help_text="file or finra_api", max_length=20, null=True)),
                ("source_name", models.CharField(help_text="file name, or the API dataset", max_length=300, null=True)),
                ("line_hash", models.CharField(help_text="BLAKE2b-128 of the line's bytes", max_length=32, null=True)),
                ("captured_at", models.DateTimeField(default=django.utils.timezone.now, null=True)),
            ]
        ],
        migrations.RunPython(group_lines_into_captures, spread_captures_over_lines),
        migrations.RemoveConstraint(model_name="rawtrade", name="otc_raw_line_once"),
        migrations.RemoveIndex(model_name="rawtrade", name="otc_raw_captured"),
        migrations.RemoveIndex(model_name="rawtrade", name="otc_raw_execution"),
        migrations.RemoveField(model_name="rawtrade", name="tier"),
        migrations.RemoveField(model_name="rawtrade", name="week"),
        migrations.RemoveField(model_name="rawtrade", name="venue_type"),
        migrations.RemoveField(model_name="rawtrade", name="source"),
        migrations.RemoveField(model_name="rawtrade", name="source_name"),
        migrations.RemoveField(model_name="rawtrade", name="line_hash"),
        migrations.RemoveField(model_name="rawtrade", name="execution_id"),
        migrations.RemoveField(model_name="rawtrade", name="captured_at"),
        migrations.AlterField(
            model_name="rawtrade",
            name="capture",
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name="lines", to="otc.rawcapture"),
        ),
    ]
