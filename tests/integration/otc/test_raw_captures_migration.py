"""otc 0002 and 0003: raw lines grouped into captures, then into blocks, and back."""

import hashlib
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("otc", "0001_initial"), ("spine_project", "0003_otc_roles")]
AFTER = [("otc", "0002_raw_captures"), ("spine_project", "0004_raw_capture_roles")]


def migrate(targets=None):
    """Migrate to `targets` (default: the latest migrations); the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
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
        migrate()


BLOCKS = [("otc", "0003_raw_blocks"), ("spine_project", "0005_raw_block_roles")]


def lines_capture(apps, lines, **fields):
    """A capture of the line-per-row state (0002) with its `(line number, text)` lines."""
    common = {"tier": "OTCE", "week": date(2025, 11, 17), "venue_type": "ats"}
    capture = apps.get_model("otc", "RawCapture").objects.create(**common, **fields)
    Lines = apps.get_model("otc", "RawTrade")
    for number, text in lines:
        Lines.objects.create(capture=capture, line_number=number, raw_line=text)
    return capture


def test_landed_lines_become_blocks_and_back():
    apps = migrate(AFTER)
    try:
        landed = [(2, "OTC|A|a|v|M|1|1|2025-12-15"), (3, "OTC|B|b \\xff|v|M|2|1|"), (5, "é|x")]
        capture = lines_capture(  # line 4 was blank, so never landed
            apps, landed, source="file", source_name="a.csv", content_hash="old", line_count=3
        )

        apps = migrate(BLOCKS)

        Block = apps.get_model("otc", "RawBlock")
        assert [
            (b.capture_id, b.first_line, b.line_count, bytes(b.data))
            for b in Block.objects.order_by("first_line")
        ] == [
            (capture.pk, 2, 2, b"OTC|A|a|v|M|1|1|2025-12-15\nOTC|B|b \\xff|v|M|2|1|\n"),
            (capture.pk, 5, 1, "é|x\n".encode()),  # a new block where the numbering skips
        ]
        kept = apps.get_model("otc", "RawCapture").objects.get()
        # Text rebuilt from lines is not the source's bytes: a hash no source can have.
        rekeyed = hashlib.sha256(b"otc-0003-lines:old").hexdigest()
        assert (kept.content_hash, kept.line_count) == (rekeyed, 3)

        apps = migrate(AFTER)

        Lines = apps.get_model("otc", "RawTrade")
        assert sorted(Lines.objects.values_list("capture_id", "line_number", "raw_line")) == [
            (capture.pk, number, text) for number, text in landed
        ]
    finally:
        migrate()


def test_a_file_landed_as_blocks_lands_again_as_received_after_a_round_trip(tmp_path, settings):
    from otc.models import RawBlock, RawCapture
    from otc.services import ingest_week

    settings.SPINE_OTC_DATA_DIR = tmp_path
    header = b"tierDescription|issueSymbolIdentifier|issueName|marketParticipantName|MPID|"
    header += b"totalWeeklyShareQuantity|totalWeeklyTradeCount|lastUpdateDate"
    data = header + b"\r\nOTC|A|a|v|M|1|1|2025-12-15\r\n\r\nOTC|B|b \xff|v|M|2|1|2025-12-15\n"
    (tmp_path / "week.csv").write_bytes(data)
    week = {"tier": "OTCE", "week": date(2025, 11, 17), "venue_type": "ats", "path": "week.csv"}
    try:
        assert ingest_week(**week)["raw_lines_new"] == 4
        migrate(AFTER)  # blocks back to lines: no header, no blank line, escaped bytes
        migrate()

        again = ingest_week(**week)

        assert again["raw_lines_new"] == 4  # the converted capture does not pass for the file
        capture = RawCapture.objects.get(content_hash=hashlib.sha256(data).hexdigest())
        landed = b"".join(bytes(b.data) for b in RawBlock.objects.filter(capture=capture))
        assert landed == data
    finally:
        migrate()


def test_converted_captures_that_skip_numbers_read_back_whole_and_new_ones_are_complete():
    from otc.models import RawCapture
    from otc.selectors import raw_lines

    apps = migrate(AFTER)
    try:
        api = {"source": "finra_api", "source_name": "otcMarket/weeklySummary", "line_count": 3}
        records = {n: f'{{"r":{n}}}' for n in (1, 2, 3)}
        lines_capture(apps, records.items(), **api, content_hash="a")
        # A re-ingest landed only the records that changed: 1 and 3 of 3.
        later = lines_capture(apps, [(n, records[n]) for n in (1, 3)], **api, content_hash="b")

        migrate()

        assert list(RawCapture.objects.order_by("pk").values_list("complete", flat=True)) == [
            True,
            False,
        ]
        assert list(raw_lines(RawCapture.objects.get(pk=later.pk))) == [
            (1, '{"r":1}'),
            (3, '{"r":3}'),
        ]
    finally:
        migrate()
