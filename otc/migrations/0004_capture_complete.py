"""A capture says whether its blocks hold every line from 1 to its line count (issue 8 review).

Reading a capture back (`otc.selectors.raw_blocks`) fails on a missing block, so that a download
retention cuts into is not served short as if it were whole. Captures converted from the
line-per-row table by 0003 may skip numbers (a file's header and blank lines, or an API
dataset's unchanged records, were never landed as rows), so a gap is no proof of loss there:
this marks them. Every capture landed since 0003 is complete.
"""

from itertools import groupby

from django.db import migrations, models

_BATCH = 500  # captures marked per update


def mark_incomplete(apps, schema_editor):
    RawCapture = apps.get_model("otc", "RawCapture")
    RawBlock = apps.get_model("otc", "RawBlock")
    line_counts = dict(RawCapture.objects.values_list("pk", "line_count"))
    blocks = RawBlock.objects.order_by("capture_id", "first_line").values_list(
        "capture_id", "first_line", "line_count"
    )
    incomplete = []
    for capture_id, rows in groupby(blocks.iterator(10_000), key=lambda row: row[0]):
        following = 1
        for _, first_line, line_count in rows:
            if first_line != following:
                break
            following = first_line + line_count
        else:
            if following == line_counts[capture_id] + 1:
                continue
        incomplete.append(capture_id)
    for start in range(0, len(incomplete), _BATCH):
        batch = incomplete[start : start + _BATCH]
        RawCapture.objects.filter(pk__in=batch).update(complete=False)


class Migration(migrations.Migration):
    dependencies = [
        ("otc", "0003_raw_blocks"),
    ]

    operations = [
        migrations.AddField(
            model_name="rawcapture",
            name="complete",
            field=models.BooleanField(
                default=True,
                help_text="its blocks held lines 1 to line_count, each once, when it was landed "
                "(captures converted from the line-per-row table by migration otc 0003 may skip "
                "numbers)",
            ),
        ),
        migrations.RunPython(mark_incomplete, migrations.RunPython.noop),
    ]
