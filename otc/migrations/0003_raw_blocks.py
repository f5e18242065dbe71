"""Raw lines land as blocks of bytes (issue 8).

`otc_trades_raw` held one row per line (capture, line number, text), with an identity and two
B-trees: a `COPY` of a million lines took 2.5 to 4 s, five times a bare `COPY` of the file. Now a
row is a block of whole lines as received, about 256 KiB (`otc.models.RawBlock`), compressed with
lz4 where the server has it.

Lines already landed become blocks of their capture: each run of consecutive line numbers is a
block of the lines' text, each followed by a newline. Those blocks are not the source's bytes
(no header, no blank lines, undecodable bytes escaped), so each converted capture's
`content_hash` becomes a hash no source can have (SHA-256 of "otc-0003-lines:" and the old
hash): the next ingest of the file lands it once more, in full, as received. Reversible, also
with rows in the tables: the reverse splits the blocks into lines again, leaving out blank lines
and a file's header (line 1), as the line-per-row landing did; a capture's `line_count` then
still counts every line it had.
"""

import hashlib

import django.db.models.deletion
from django.db import DatabaseError, migrations, models, transaction

_BATCH = 1_000  # lines per insert on the way back
_BLOCKS = 16  # blocks per insert (about 4 MiB)
_BLOCK_BYTES = 256 * 1024


def lines_to_blocks(apps, schema_editor):
    RawCapture = apps.get_model("otc", "RawCapture")
    RawTrade = apps.get_model("otc", "RawTrade")
    RawBlock = apps.get_model("otc", "RawBlock")
    pending = []

    def add(capture_id, first, parts):
        data = b"".join(parts)
        pending.append(
            RawBlock(capture_id=capture_id, first_line=first, line_count=len(parts), data=data)
        )
        if len(pending) >= _BLOCKS:
            RawBlock.objects.bulk_create(pending)
            pending.clear()

    captures = RawCapture.objects.order_by("pk").values_list("pk", "content_hash")
    for capture_id, old_hash in list(captures):
        # Its blocks are its lines' text, not the source's bytes: a hash no source can have, so
        # the next ingest of the file lands it again, as received.
        rekeyed = hashlib.sha256(b"otc-0003-lines:" + old_hash.encode()).hexdigest()
        RawCapture.objects.filter(pk=capture_id).update(content_hash=rekeyed)
        lines = RawTrade.objects.filter(capture_id=capture_id).order_by("line_number")
        parts, first, following, size = [], 0, 0, 0
        for number, text in lines.values_list("line_number", "raw_line").iterator(10_000):
            if parts and (number != following or size >= _BLOCK_BYTES):
                add(capture_id, first, parts)
                parts, size = [], 0
            if not parts:
                first = number
            parts.append(text.encode() + b"\n")
            size += len(parts[-1])
            following = number + 1
        if parts:
            add(capture_id, first, parts)
    RawBlock.objects.bulk_create(pending)


def blocks_to_lines(apps, schema_editor):
    RawBlock = apps.get_model("otc", "RawBlock")
    RawTrade = apps.get_model("otc", "RawTrade")
    files = set(
        apps.get_model("otc", "RawCapture")
        .objects.filter(source="file")
        .values_list("pk", flat=True)
    )
    batch = []
    for block in RawBlock.objects.order_by("capture_id", "first_line").iterator(100):
        data = bytes(block.data)
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        for number, raw in enumerate(lines, start=block.first_line):
            raw = raw.rstrip(b"\r")
            if not raw.strip() or (number == 1 and block.capture_id in files):
                continue
            text = raw.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
            batch.append(RawTrade(capture_id=block.capture_id, line_number=number, raw_line=text))
            if len(batch) >= _BATCH:
                RawTrade.objects.bulk_create(batch)
                batch = []
    RawTrade.objects.bulk_create(batch)


def compress_with_lz4(apps, schema_editor):
    """lz4 compresses blocks several times faster than PostgreSQL's default (pglz).

    PostgreSQL 14 and later, when built with lz4 (most packages are); otherwise pglz stays.
    """
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("ALTER TABLE otc_trades_raw ALTER COLUMN data SET COMPRESSION lz4")
    except DatabaseError:
        pass


class Migration(migrations.Migration):
    dependencies = [
        ("otc", "0002_raw_captures"),
        # The role migrations that grant the permission on raw lines run while the model exists.
        ("spine_project", "0004_raw_capture_roles"),
    ]

    operations = [
        migrations.AlterModelTable(name="rawtrade", table="otc_trades_raw_lines"),
        migrations.CreateModel(
            name="RawBlock",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "first_line",
                    models.PositiveIntegerField(help_text="number of the block's first line"),
                ),
                ("line_count", models.PositiveIntegerField()),
                (
                    "data",
                    models.BinaryField(help_text="the lines as received, each ending in a newline"),
                ),
                (
                    "capture",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="blocks",
                        to="otc.rawcapture",
                    ),
                ),
            ],
            options={
                "db_table": "otc_trades_raw",
                "ordering": ["capture_id", "first_line"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("capture", "first_line"), name="otc_raw_block_once"
                    ),
                ],
            },
        ),
        # Before any row goes in: an ALTER TABLE fails while deferred foreign key checks wait.
        migrations.RunPython(compress_with_lz4, migrations.RunPython.noop),
        migrations.RunPython(lines_to_blocks, blocks_to_lines),
        migrations.DeleteModel(name="RawTrade"),
        migrations.AlterField(
            model_name="rawcapture",
            name="content_hash",
            field=models.CharField(
                help_text="SHA-256 of the source as received (of a file: what sha256sum prints)",
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="rawcapture",
            name="line_count",
            field=models.PositiveIntegerField(help_text="lines as received, header included"),
        ),
    ]
