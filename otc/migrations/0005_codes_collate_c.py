"""`otc_trades`' codes (tier, symbol, venue MPID, venue type) in the "C" collation on PostgreSQL.

See `otc.models.CodeField`. One `ALTER TABLE` for the four columns: PostgreSQL rebuilds each of
the table's indexes once (four `AlterField`s would rebuild the unique one four times). It holds
an exclusive lock on `otc_trades` meanwhile: 1.5 s for 1M rows on the issue 8 VM.
Nothing to do on SQLite, whose columns keep their collation.
"""

from django.db import migrations

import otc.models

COLUMNS = {"tier": 4, "symbol": 20, "venue_mpid": 10, "venue_type": 8}


def collate(collation: str):
    def alter(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        changes = ", ".join(
            f'ALTER COLUMN {column} TYPE varchar({length}) COLLATE "{collation}"'
            for column, length in COLUMNS.items()
        )
        schema_editor.execute(f"ALTER TABLE otc_trades {changes}")

    return alter


class Migration(migrations.Migration):
    dependencies = [
        ("otc", "0004_capture_complete"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(collate("C"), collate("default"))],
            state_operations=[
                migrations.AlterField(
                    model_name="trade",
                    name="symbol",
                    field=otc.models.CodeField(max_length=20),
                ),
                migrations.AlterField(
                    model_name="trade",
                    name="tier",
                    field=otc.models.CodeField(
                        choices=[("T1", "NMS Tier 1"), ("T2", "NMS Tier 2"), ("OTCE", "OTC")],
                        max_length=4,
                    ),
                ),
                migrations.AlterField(
                    model_name="trade",
                    name="venue_mpid",
                    field=otc.models.CodeField(max_length=10),
                ),
                migrations.AlterField(
                    model_name="trade",
                    name="venue_type",
                    field=otc.models.CodeField(
                        choices=[("ats", "ATS"), ("non_ats", "Non-ATS")], max_length=8
                    ),
                ),
            ],
        ),
    ]
