"""Property-based fuzzing of a whole ingest on the test database (COPY on PostgreSQL, batched
inserts on SQLite): every non-blank line is landed raw at its line number, and is either a
normalized row or a rejected row with a reason; the tables hold exactly what the Python parser
alone makes of the file, reasons and details included; a re-run changes nothing."""

from collections import Counter
from contextlib import nullcontext
from unittest.mock import patch

import pytest
from django.db import transaction
from hypothesis import event, given, settings
from hypothesis import strategies as st

from otc import loader, parser
from otc.errors import NoValidRows
from otc.models import RawBlock, RawCapture, RejectedRow, Trade
from otc.selectors import raw_lines
from otc.services import ingest_week
from tests.fuzz.strategies import WEEK, examples, finra_file
from tests.integration.otc.conftest import loaded_tables, parser_verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(tmp_path, settings):
    settings.SPINE_OTC_DATA_DIR = tmp_path
    return tmp_path


def tables():
    week = {"tier": "OTCE", "week": WEEK}
    blocks = RawBlock.objects.filter(capture__tier="OTCE", capture__week=WEEK)
    return (
        b"".join(
            bytes(d)
            for d in blocks.order_by("capture_id", "first_line").values_list("data", flat=True)
        ),
        sorted(Trade.objects.filter(**week).values_list("symbol", "venue_mpid", "shares")),
        sorted(RejectedRow.objects.filter(**week).values_list("line_number", "reason")),
    )


@settings(max_examples=examples(40))
@given(generated=finra_file(max_lines=15), staged=st.booleans())
def test_an_ingest_accounts_for_every_line(generated, staged, data_dir):
    data, numbered = generated
    (data_dir / "week.csv").write_bytes(data)
    # Blocks of about 100 bytes, so that a file of a few lines lands as several blocks. On
    # PostgreSQL a new week goes the fresh way unless `staged` (or a duplicate) says otherwise.
    fresh = patch.object(loader, "_load_fresh", lambda *args: None) if staged else nullcontext()
    with transaction.atomic(), patch.object(parser, "BLOCK_BYTES", 100), fresh:
        try:
            result = ingest_week(tier="OTCE", week=WEEK, venue_type="ats", path="week.csv")
        except NoValidRows:
            event("no valid rows")
            assert tables() == (b"", [], [])  # nothing loadable: the week is left unchanged
            transaction.set_rollback(True)
            return
        except Exception as exc:  # only a file with no data rows may fail as a whole
            assert not numbered, exc
            transaction.set_rollback(True)
            return
        raw, trades, rejects = tables()
        event("loaded, some rejected" if rejects else "loaded, none rejected")
        expected = parser_verdict(data, tier="OTCE", week=WEEK)
        assert loaded_tables(tier="OTCE", week=WEEK) == expected
        numbers = [number for number, _ in numbered]
        capture = RawCapture.objects.get(tier="OTCE", week=WEEK)
        blocks = RawBlock.objects.filter(capture=capture)
        assert sum(b.line_count for b in blocks) == capture.line_count == result["raw_lines_new"]
        lines = dict(raw_lines(capture))  # a reject's line is the landed line of its number
        for number, text in RejectedRow.objects.values_list("line_number", "raw_line"):
            assert lines[number] == text

        assert raw == data  # landed as received, every byte
        assert {n for n, _ in rejects} <= set(numbers)
        assert (result["rows_read"], result["rows_loaded"], result["rows_rejected"]) == (
            len(numbers),
            len(trades),
            len(rejects),
        )
        assert result["rejected_by_reason"] == dict(Counter(r for _, r in rejects))
        seen = set()
        for number, line in numbered:
            if line.expected is None:
                continue
            symbol, _, _, mpid, shares, _, _ = line.expected
            if (symbol, mpid) in seen:
                assert (number, "duplicate") in rejects
            else:
                assert (symbol, mpid, shares) in trades
            seen.add((symbol, mpid))

        again = ingest_week(tier="OTCE", week=WEEK, venue_type="ats", path="week.csv")
        assert (again["raw_lines_new"], again["trades_written"], again["trades_removed"]) == (
            0,
            0,
            0,
        )
        assert tables() == (raw, trades, rejects)
        transaction.set_rollback(True)
