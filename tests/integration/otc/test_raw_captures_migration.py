"""otc 0002: lines landed before captures existed are grouped into captures, and back."""

import hashlib
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("otc", "0001_initial"), ("spine_project", "0003_otc_roles")]
AFTER = [("otc", "0002_raw_captures"), ("spine_project", "0004_raw_capture_roles")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_landed_lines_become_captures_and_back():
    apps = migrate(BEFORE)
    try:
        OldRaw = apps.get_model("otc", "RawTrade")
        first, second = (datetime(2025, 12, d, tzinfo=UTC) for d in (15, 16))
        common = {"tier": "OTCE", "week": date(2025, 11, 17), "venue_type": "ats"}
        landed = [  # (source, name, execution, when, line number, text)
            ("file", "a.csv", None, first, 2, "OTC|A|a|v|M|1|1|2025-12-15"),
            ("file", "a.csv", None, first, 3, "OTC|B|b|v|M|2|1|2025-12-15"),
            ("file", "a.csv", None, second, 3, "OTC|B|b|v|M|5|1|2025-12-15"),  # a change
        ]
        for source, name, execution_id, when, number, text in landed:
            OldRaw.objects.create(
                **common,
                source=source,
                source_name=name,
                execution_id=execution_id,
                captured_at=when,
                line_number=number,
                line_hash=hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
                raw_line=text,
            )

        apps = migrate(AFTER)

        Capture = apps.get_model("otc", "RawCapture")
        Raw = apps.get_model("otc", "RawTrade")
        captures = list(Capture.objects.order_by("captured_at"))
        assert [(c.captured_at, c.line_count) for c in captures] == [(first, 2), (second, 1)]
        digest = hashlib.sha256(b"2\tOTC|A|a|v|M|1|1|2025-12-15\n3\tOTC|B|b|v|M|2|1|2025-12-15\n")
        assert captures[0].content_hash == digest.hexdigest()  # as the landing hashes
        assert sorted(Raw.objects.values_list("capture_id", "line_number")) == [
            (captures[0].pk, 2),
            (captures[0].pk, 3),
            (captures[1].pk, 3),
        ]

        apps = migrate(BEFORE)

        OldRaw = apps.get_model("otc", "RawTrade")
        assert sorted(
            OldRaw.objects.values_list("captured_at", "line_number", "source_name", "line_hash")
        ) == sorted(
            (when, number, name, hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
            for _, name, _, when, number, text in landed
        )
    finally:
        migrate(AFTER)
