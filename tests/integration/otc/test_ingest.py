"""`otc.ingest_week` on the real FINRA week and on broken copies of it (SPEC §5)."""

import hashlib
import random
from datetime import date
from itertools import islice

import pytest
from django.db import connection

from executions.models import Status
from otc.models import MetricsDaily, RawBlock, RawCapture, RejectedRow, RejectReason, Trade
from otc.selectors import raw_lines
from tests.integration.otc.conftest import (
    SAMPLE,
    SAMPLE_WEEK,
    loaded_tables,
    parser_verdict,
    table_snapshot,
)

SAMPLE_PARAMS = {"tier": "OTCE", "week": SAMPLE_WEEK, "path": "otc_sample.csv"}


def test_the_shared_week_loads_every_row_and_a_rerun_changes_nothing(data_dir, run_pipeline):
    first = run_pipeline("otc.ingest_week", SAMPLE_PARAMS)

    assert first.status == Status.COMPLETED, first.error_message
    assert first.logical_key == "otc.ingest_week:OTCE:2025-11-17:ats"
    assert first.result == {
        "tier": "OTCE",
        "week": "2025-11-17",
        "venue_type": "ats",
        "source": "file",
        "rows_read": 5328,
        "rows_loaded": 5328,
        "rows_rejected": 0,
        "rejected_by_reason": {},
        "raw_lines_new": 5329,  # the header too
        "trades_written": 5328,
        "trades_removed": 0,
        "metric_rows": 3111,
    }
    assert Trade.objects.count() == 5328
    assert Trade.objects.values("symbol").distinct().count() == 3111
    assert MetricsDaily.objects.count() == 3111
    capture = RawCapture.objects.get()
    assert (capture.execution_id, capture.source, capture.source_name) == (
        first.id,
        "file",
        "otc_sample.csv",
    )
    assert capture.line_count == 5329
    # Landed as received: the blocks put together are the file, and its SHA-256 the hash.
    data = b"".join(bytes(b.data) for b in RawBlock.objects.filter(capture=capture))
    assert data == SAMPLE.read_bytes()
    assert capture.content_hash == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert list(raw_lines(capture))[:2] == list(enumerate(SAMPLE.read_text().splitlines()[:2], 1))
    assert RejectedRow.objects.count() == 0
    before = table_snapshot()

    second = run_pipeline("otc.ingest_week", SAMPLE_PARAMS)

    assert second.status == Status.COMPLETED
    assert (second.result["raw_lines_new"], second.result["trades_written"]) == (0, 0)
    assert table_snapshot() == before


def test_normalized_rows_and_metrics_hold_the_files_values(data_dir, run_pipeline):
    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)

    aabb = Trade.objects.get(symbol="AABB", venue_mpid="OTCN")
    assert (aabb.week, aabb.tier, aabb.venue_type, aabb.shares, aabb.trades) == (
        date(2025, 11, 17),
        "OTCE",
        "ats",
        6753871,
        171,
    )
    assert (aabb.issue_name, aabb.venue_name, aabb.publication_date) == (
        "Asia Broadband Inc Common Stock",
        "OTCN OTC LINK NQB IDQS",
        date(2025, 12, 15),
    )
    m = MetricsDaily.objects.get(symbol="AABB")
    assert (m.total_shares, m.total_trades, m.trading_days, m.venue_count) == (6794184, 174, 5, 2)
    assert m.avg_daily_shares == pytest.approx(6794184 / 5)
    assert m.avg_daily_trades == pytest.approx(174 / 5)
    assert m.avg_trade_size == pytest.approx(6794184 / 174)
    assert (m.top_venue_mpid, m.top_venue_name) == ("OTCN", "OTCN OTC LINK NQB IDQS")
    assert m.top_venue_share == pytest.approx(6753871 / 6794184)
    shares = [6753871 / 6794184 * 100, 40313 / 6794184 * 100]
    assert m.hhi == pytest.approx(sum(s * s for s in shares))
    assert (m.ats_shares, m.ats_share, m.wow_change) == (6794184, None, None)


def test_ats_share_and_week_over_week_need_both_files_and_the_previous_week(data_dir, run_pipeline):
    header = SAMPLE.read_bytes().split(b"\n", 1)[0]
    (data_dir / "prev.csv").write_bytes(
        header
        + b"\nOTC|AABB|Asia Broadband Inc|OTCN OTC LINK NQB IDQS|OTCN|1000000|10|2025-12-08\n"
    )
    (data_dir / "firms.csv").write_bytes(
        header
        + b"\nOTC|AABB|Asia Broadband Inc|CITADEL SECURITIES LLC|CDRG|3205816|50|2025-12-15\n"
    )
    run_pipeline("otc.ingest_week", {"tier": "OTCE", "week": "2025-11-10", "path": "prev.csv"})
    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    assert MetricsDaily.objects.get(symbol="AABB", week=SAMPLE_WEEK).ats_share is None

    non_ats = run_pipeline(
        "otc.ingest_week",
        {"tier": "OTCE", "week": SAMPLE_WEEK, "venue_type": "non_ats", "path": "firms.csv"},
    )

    assert non_ats.status == Status.COMPLETED, non_ats.error_message
    m = MetricsDaily.objects.get(symbol="AABB", week=SAMPLE_WEEK)
    assert (m.total_shares, m.ats_shares, m.venue_count, m.top_venue_mpid) == (
        10_000_000,
        6794184,
        3,
        "OTCN",
    )
    assert m.ats_share == pytest.approx(0.6794184)
    assert m.wow_change == pytest.approx((10_000_000 - 1_000_000) / 1_000_000)
    # A symbol only in the ATS file: its ATS share is now known to be 100 %.
    assert MetricsDaily.objects.get(symbol="AACAY", week=SAMPLE_WEEK).ats_share == 1.0


def test_an_earlier_week_loaded_later_refreshes_the_next_weeks_change(data_dir, run_pipeline):
    header = SAMPLE.read_bytes().split(b"\n", 1)[0]
    earlier = {"tier": "OTCE", "week": "2025-11-10", "path": "prev.csv"}

    def load_earlier(symbol: str, shares: int) -> None:
        line = f"OTC|{symbol}|An Issue|X ATS|XATS|{shares}|10|2025-12-08"
        (data_dir / "prev.csv").write_bytes(header + b"\n" + line.encode() + b"\n")
        assert run_pipeline("otc.ingest_week", earlier).status == Status.COMPLETED

    def changes() -> dict[str, float]:
        week = MetricsDaily.objects.filter(week=SAMPLE_WEEK, tier="OTCE", wow_change__isnull=False)
        return dict(week.values_list("symbol", "wow_change"))

    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    assert changes() == {}
    aabb = MetricsDaily.objects.get(week=SAMPLE_WEEK, symbol="AABB").total_shares

    load_earlier("AABB", 1_000_000)
    # Every other symbol of the week has no earlier week to compare with.
    assert changes() == {"AABB": pytest.approx((aabb - 1_000_000) / 1_000_000)}
    load_earlier("AABB", 4 * aabb)
    assert changes() == {"AABB": pytest.approx(-0.75)}
    load_earlier("ZZZZ", 100)  # AABB left the earlier week: nothing to compare it with now
    assert changes() == {}


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_loads(data_dir, run_pipeline):
    lines = SAMPLE.read_bytes().split(b"\n")
    header, good = lines[0], lines[1:11]  # ten good rows: lines 2-11
    bad = [
        b"OTC|AABB|Asia Broadband Inc|OTCX OTC LINK ECN ATS|OTCX|40313|2025-12-15",  # line 12
        b"OTC|ZZZA|Zeta Inc|OTCX OTC LINK ECN ATS|OTCX|12abc|3|2025-12-15",  # line 13
        b"OTC|ZZZB|Zeta Inc|OTCX OTC LINK ECN ATS|OTCX|-40|3|2025-12-15",  # line 14
        b"OTC||Nameless Inc|OTCX OTC LINK ECN ATS|OTCX|40|3|2025-12-15",  # line 15
        b"OTC|ZZZC|Z\xe9ta \xff Inc|OTCX OTC LINK ECN ATS|OTCX|40|3|2025-12-15",  # line 16
        lines[1],  # line 17: a duplicate of line 2
    ]
    (data_dir / "bad.csv").write_bytes(b"\n".join([header, *good, *bad]))

    execution = run_pipeline(
        "otc.ingest_week", {"tier": "OTCE", "week": SAMPLE_WEEK, "path": "bad.csv"}
    )

    assert execution.status == Status.COMPLETED, execution.error_message
    assert execution.result["rows_read"] == 16
    assert execution.result["rows_loaded"] == 10
    assert execution.result["rejected_by_reason"] == {
        "bad_encoding": 1,
        "duplicate": 1,
        "empty_symbol": 1,
        "field_count": 1,
        "negative_volume": 1,
        "non_numeric_volume": 1,
    }
    assert Trade.objects.count() == 10
    assert list(
        RejectedRow.objects.order_by("line_number").values_list("line_number", "reason")
    ) == [
        (12, "field_count"),
        (13, "non_numeric_volume"),
        (14, "negative_volume"),
        (15, "empty_symbol"),
        (16, "bad_encoding"),
        (17, "duplicate"),
    ]
    bad_bytes = RejectedRow.objects.get(line_number=16)
    assert (
        bad_bytes.raw_line
        == "OTC|ZZZC|Z\\xe9ta \\xff Inc|OTCX OTC LINK ECN ATS|OTCX|40|3|2025-12-15"
    )
    assert bad_bytes.execution_id == execution.id
    # Every line as received, the bad ones too (line 16 keeps its bytes: only rejects escape).
    [capture] = RawCapture.objects.filter(source_name="bad.csv")
    assert capture.line_count == 17
    landed = b"".join(bytes(b.data) for b in RawBlock.objects.filter(capture=capture))
    assert landed == (data_dir / "bad.csv").read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad.csv: the file is empty"),
        (b"symbol|volume\nAABB|1\n", "bad.csv: wrong header (missing tierDescription"),
        (SAMPLE.read_bytes().split(b"\n")[0] + b"\n", "bad.csv: the file has a header but no data"),
    ],
)
def test_an_empty_file_or_wrong_header_fails_permanently_and_changes_nothing(
    data_dir, run_pipeline, content, message
):
    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    before = table_snapshot()
    (data_dir / "bad.csv").write_bytes(content)

    execution = run_pipeline(
        "otc.ingest_week", {"tier": "OTCE", "week": SAMPLE_WEEK, "path": "bad.csv"}
    )

    assert execution.status == Status.FAILED
    assert execution.attempt == 1
    assert execution.error_type == "BadSourceFile"
    assert execution.error_message.startswith(message)
    assert table_snapshot() == before


def test_a_file_with_no_loadable_line_fails_and_keeps_the_loaded_week(data_dir, run_pipeline):
    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    before = table_snapshot()
    # The sample named as the wrong week: published before that week ended.
    execution = run_pipeline(
        "otc.ingest_week", {"tier": "OTCE", "week": "2025-12-15", "path": "otc_sample.csv"}
    )

    assert execution.status == Status.FAILED
    assert execution.error_type == "NoValidRows"
    assert "5328 published_too_early" in execution.error_message
    assert table_snapshot() == before


def test_a_directory_is_read_as_the_parts_of_one_week(data_dir, run_pipeline):
    lines = SAMPLE.read_bytes().split(b"\n")
    part = data_dir / "week"
    part.mkdir()
    (part / "a.csv").write_bytes(b"\n".join(lines[:3001]))
    (part / "b.csv").write_bytes(b"\n".join([lines[0], *lines[3001:]]))

    execution = run_pipeline("otc.ingest_week", {**SAMPLE_PARAMS, "path": "week"})

    assert execution.status == Status.COMPLETED, execution.error_message
    assert (execution.result["rows_loaded"], execution.result["metric_rows"]) == (5328, 3111)
    assert dict(RawCapture.objects.values_list("source_name", "line_count")) == {
        "a.csv": 3001,
        "b.csv": 2329,
    }


def test_a_changed_file_replaces_the_weeks_rows(data_dir, run_pipeline):
    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    lines = SAMPLE.read_bytes().split(b"\n")
    changed = [lines[0], lines[1].replace(b"|6753871|", b"|6753872|"), *lines[3:]]
    (data_dir / "v2.csv").write_bytes(b"\n".join(changed))

    execution = run_pipeline("otc.ingest_week", {**SAMPLE_PARAMS, "path": "v2.csv"})

    assert execution.status == Status.COMPLETED
    assert execution.result["trades_removed"] == 1  # line 3 (AABB at OTCX) is gone
    assert Trade.objects.count() == 5327
    assert Trade.objects.get(symbol="AABB").shares == 6753872
    assert MetricsDaily.objects.get(symbol="AABB").venue_count == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tier": "OTCE", "week": "2025-11-18", "path": "otc_sample.csv"}, "week"),
        ({"tier": "OTC", "week": SAMPLE_WEEK, "path": "otc_sample.csv"}, "tier"),
        ({"tier": "OTCE", "week": SAMPLE_WEEK}, "params"),
        ({"tier": "OTCE", "week": SAMPLE_WEEK, "path": "../secrets.csv"}, "path"),
        ({"tier": "OTCE", "week": SAMPLE_WEEK, "path": "/etc/passwd"}, "path"),
    ],
)
def test_bad_params_are_refused_at_dispatch(data_dir, make_execution, params, field):
    from executions.errors import InvalidParams
    from executions.models import Execution

    with pytest.raises(InvalidParams) as exc:
        make_execution("otc.ingest_week", params)
    assert field in exc.value.details
    assert Execution.objects.count() == 0


def test_recompute_metrics_rebuilds_the_same_rows(data_dir, run_pipeline):
    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    before = list(
        MetricsDaily.objects.order_by("symbol").values_list(
            "symbol", "total_shares", "hhi", "top_venue_mpid"
        )
    )

    execution = run_pipeline("otc.recompute_metrics", {"tier": "OTCE", "week": SAMPLE_WEEK})

    assert execution.status == Status.COMPLETED
    assert execution.result == {"tier": "OTCE", "week": SAMPLE_WEEK, "metric_rows": 3111}
    after = list(
        MetricsDaily.objects.order_by("symbol").values_list(
            "symbol", "total_shares", "hhi", "top_venue_mpid"
        )
    )
    assert after == before


EVERY_KIND_OF_LINE = [
    b"OTC|AABB|Asia Broadband, Inc|OTCX OTC LINK ECN ATS|OTCX|40313|3|2025-12-15",
    b"OTC|\xc2\xa0AACAY\xe2\x80\x83 | AAC Technologies |ARCA\t|ARCA|000012746|+56|",  # strip, zeros
    b"",  # blank lines are skipped but counted
    b" \t",
    b"OTC|ZZZ1|Too Few|OTCX ATS|OTCX|1|2025-12-15",  # field_count
    b"OTC|ZZZ2|Too|Many|OTCX ATS|OTCX|1|1|2025-12-15",  # field_count
    b"OTC|ZZZ3|Z\xe9ta \xff Inc|OTCX ATS|OTCX|40|3|2025-12-15",  # bad_encoding
    b"OTC|ZZZ4|Nul\x00 Inc|OTCX ATS|OTCX|40|3|2025-12-15",  # bad_encoding (NUL)
    b"OTC| |Nameless Inc|OTCX ATS|OTCX|40|3|2025-12-15",  # empty_symbol
    b"OTC|ZZZ5|Venueless Inc|OTCX ATS||40|3|2025-12-15",  # empty_venue
    b"OTC|ZZZ6|Zeta Inc|OTCX ATS|OTCX|12abc|3|2025-12-15",  # non_numeric_volume
    "OTC|ZZZ7|Zeta Inc|OTCX ATS|OTCX|٣٣|3|2025-12-15".encode(),  # non_numeric_volume
    b"OTC|ZZZ8|Zeta Inc|OTCX ATS|OTCX|40|" + b"9" * 20 + b"|2025-12-15",  # non_numeric_volume
    b"OTC|ZZZ9|Zeta Inc|OTCX ATS|OTCX|-40|3|2025-12-15",  # negative_volume
    b"OTC|ZZYA|Zeta Inc|OTCX ATS|OTCX|40|3|15/12/2025",  # bad_date
    b"OTC|ZZYB|Zeta Inc|OTCX ATS|OTCX|40|3|2025-02-30",  # bad_date
    b"NMS Tier 1|ZZYC|Zeta Inc|OTCX ATS|OTCX|40|3|2025-12-15",  # tier_mismatch
    b"OTC|ZZYD|Zeta Inc|OTCX ATS|OTCX|40|3|2025-11-21",  # published_too_early
    b"OTC|" + b"Z" * 21 + b"|Zeta Inc|OTCX ATS|OTCX|40|3|2025-12-15",  # value_too_long
    b"OTC|AABB|Asia Broadband, Inc|OTCX OTC LINK ECN ATS|OTCX|1|1|2025-12-15",  # duplicate
    b"OTC|ZZYE|Back\\slash \\N Inc|OTCX ATS|OTCX|7|1|2025-12-15\r",  # COPY's escapes, a CR
    b"OTC|ZZYF|Last Line Inc|OTCX ATS|OTCX|0|0|2025-12-16",  # no newline at the end
]


DUPLICATE_LINE = EVERY_KIND_OF_LINE.index(
    b"OTC|AABB|Asia Broadband, Inc|OTCX OTC LINK ECN ATS|OTCX|1|1|2025-12-15"
)


@pytest.mark.parametrize(
    ("duplicate", "fresh_rejects", "fresh"),
    [(False, 15, True), (True, 16, False), (False, 14, False)],
    ids=["fresh way", "a duplicate", "too many rejects"],
)
def test_every_kind_of_line_loads_exactly_as_the_parser_says(
    data_dir, run_pipeline, monkeypatch, duplicate, fresh_rejects, fresh
):
    # The same file on PostgreSQL (COPY, hash joins) and SQLite (batched inserts): the tables
    # must hold what the Python parser alone makes of it, reasons and details included. On
    # PostgreSQL the first ingest of the week goes the fresh way, holding its rejects in memory,
    # unless a duplicate (the unique constraint stops its COPY) or more rejects than it has
    # room for send it the staged way. The second is staged: the week has rows.
    from otc import loader

    monkeypatch.setattr(loader, "FRESH_REJECTS", fresh_rejects)
    staged = []
    load_staged = loader._load_staged
    monkeypatch.setattr(
        loader, "_load_staged", lambda *args: staged.append(1) or load_staged(*args)
    )
    lines = [*EVERY_KIND_OF_LINE]
    if not duplicate:
        del lines[DUPLICATE_LINE]
    header = SAMPLE.read_bytes().split(b"\n", 1)[0]
    data = b"\n".join([header, *lines])
    (data_dir / "every.csv").write_bytes(data)
    params = {"tier": "OTCE", "week": SAMPLE_WEEK, "path": "every.csv"}
    expected = parser_verdict(data, tier="OTCE", week=date(2025, 11, 17), source_name="every.csv")

    first = run_pipeline("otc.ingest_week", params)

    assert first.status == Status.COMPLETED, first.error_message
    assert loaded_tables(tier="OTCE", week=SAMPLE_WEEK) == expected
    trades, rejects, raw = expected
    assert {reason for _, reason, _ in rejects} == set(RejectReason.values) - {
        RejectReason.WRONG_SUMMARY_TYPE,  # a FINRA API answer only
        *([] if duplicate else [RejectReason.DUPLICATE]),
    }
    assert [t[0] for t in trades] == ["AABB", "AACAY", "ZZYE", "ZZYF"]
    assert raw == data
    assert (first.result["rows_read"], first.result["rows_loaded"]) == (19 + duplicate, 4)
    assert first.result["rows_rejected"] == len(rejects) == 15 + duplicate
    fresh = fresh and connection.vendor == "postgresql"
    assert len(staged) == (0 if fresh else 1)
    before = table_snapshot()

    again = run_pipeline("otc.ingest_week", params)

    assert (again.result["raw_lines_new"], again.result["trades_written"]) == (0, 0)
    assert table_snapshot() == before
    assert len(staged) == (1 if fresh else 2)


@pytest.mark.parametrize("rewritten_lines", [50, 1], ids=["shorter", "header only"])
def test_a_file_changed_between_landing_and_parsing_is_retried_and_nothing_is_kept(
    data_dir, run_pipeline, monkeypatch, rewritten_lines
):
    from otc import loader

    run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    before = table_snapshot()
    lines = SAMPLE.read_bytes().split(b"\n")
    (data_dir / "moving.csv").write_bytes(b"\n".join(lines[:100]))
    normalize = loader.normalize

    def rewrite_then_normalize(*args, **kwargs):
        rewritten = b"\n".join(lines[:rewritten_lines])  # rewritten mid-ingest
        (data_dir / "moving.csv").write_bytes(rewritten)
        return normalize(*args, **kwargs)

    monkeypatch.setattr(loader, "normalize", rewrite_then_normalize)

    execution = run_pipeline("otc.ingest_week", {**SAMPLE_PARAMS, "path": "moving.csv"})

    assert (execution.status, execution.error_type) == (Status.QUEUED, "SourceChanged")
    assert "moving.csv: the source changed while it was being ingested" in (execution.error_message)
    assert table_snapshot() == before


def test_a_file_whose_raw_blocks_retention_deleted_lands_again(data_dir, run_pipeline):
    from datetime import timedelta

    from django.utils import timezone

    from executions import cleanup

    first = run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    assert first.status == Status.COMPLETED, first.error_message
    later = timezone.now() + timedelta(days=181)
    blocks = RawBlock.objects.count()
    assert blocks == 3  # 543 KiB in blocks of about 256 KiB
    [raw] = cleanup.run_cleanup(kinds=["otc_raw"], now=later)  # the blocks only, not captures
    assert (raw.deleted, RawCapture.objects.count(), RawBlock.objects.count()) == (blocks, 1, 0)

    again = run_pipeline("otc.ingest_week", SAMPLE_PARAMS)

    assert again.result["raw_lines_new"] == 5329
    capture = RawCapture.objects.get()  # the emptied capture gave way to the new one
    assert (capture.execution_id, capture.line_count) == (again.id, 5329)
    data = b"".join(bytes(b.data) for b in RawBlock.objects.filter(capture=capture))
    assert data == SAMPLE.read_bytes()


def test_a_captures_blocks_read_back_page_by_page_and_a_missing_one_is_not_skipped(
    data_dir, run_pipeline, monkeypatch, django_assert_num_queries
):
    from otc import parser
    from otc.selectors import CaptureIncomplete, raw_blocks

    monkeypatch.setattr(parser, "BLOCK_BYTES", 64 * 1024)  # 9 blocks of the sample
    assert run_pipeline("otc.ingest_week", SAMPLE_PARAMS).status == Status.COMPLETED
    capture = RawCapture.objects.get()
    firsts = list(RawBlock.objects.order_by("first_line").values_list("first_line", flat=True))
    assert len(firsts) == 9

    with django_assert_num_queries(3):  # 4, 4 and 1 blocks
        assert b"".join(data for _, data in raw_blocks(capture)) == SAMPLE.read_bytes()

    RawBlock.objects.filter(capture=capture, first_line=firsts[5]).delete()
    read = raw_blocks(capture)
    assert [first for first, _ in islice(read, 5)] == firsts[:5]
    with pytest.raises(CaptureIncomplete, match=f"no block holds line {firsts[5]}"):
        next(read)

    RawBlock.objects.filter(capture=capture, first_line__gt=firsts[5]).delete()  # the tail
    with pytest.raises(CaptureIncomplete, match=f"its lines stop before line {firsts[5]}"):
        list(raw_blocks(capture))

    RawBlock.objects.filter(capture=capture, first_line=1).delete()  # retention starts here
    with pytest.raises(CaptureIncomplete, match="no block holds line 1"):
        next(raw_blocks(capture))

    RawBlock.objects.filter(capture=capture).delete()  # and ends here
    assert list(raw_blocks(capture)) == []


@pytest.mark.parametrize("loaded_before", [False, True], ids=["fresh way", "staged way"])
def test_a_cancel_while_the_rows_stream_in_propagates_and_keeps_nothing(
    data_dir, run_pipeline, monkeypatch, loaded_before
):
    # The cancellation check runs inside the parser's generator, which on PostgreSQL feeds a
    # COPY: the check's own exception must come out (not the COPY's), and nothing stays.
    from otc import services

    if loaded_before:
        run_pipeline("otc.ingest_week", SAMPLE_PARAMS)
    before = table_snapshot()
    monkeypatch.setattr(services, "_CHECK_EVERY", 1_000)

    class Cancelled(Exception):
        pass

    checks = []

    def check():
        checks.append(1)
        if len(checks) == 3:  # landing checks every 40 blocks: parsing, at line 3,000
            raise Cancelled

    with pytest.raises(Cancelled):
        services.ingest_week(
            tier="OTCE",
            week=date(2025, 11, 17),
            venue_type="ats",
            path="otc_sample.csv",
            check_cancelled=check,
        )

    assert len(checks) == 3
    assert table_snapshot() == before


def test_the_metrics_are_what_a_python_reckoning_of_the_rows_makes_of_them(data_dir, run_pipeline):
    # Ties for the top venue (the first MPID wins), a symbol with no volume, and a venue in
    # both the ATS and the non-ATS file (one venue: its volumes add up).
    header = SAMPLE.read_bytes().split(b"\n", 1)[0]
    ats = [
        b"OTC|TIE|Tie Inc|Bee ATS|BBBB|500|5|2025-12-15",
        b"OTC|TIE|Tie Inc|Ay ATS|AAAA|500|7|2025-12-15",
        b"OTC|TIE|Tie Inc|Cee ATS|CCCC|100|1|2025-12-15",
        b"OTC|NIL|Nil Inc|Ex ATS|XXXX|0|0|2025-12-15",
        b"OTC|NIL|Nil Inc|Wu ATS|WWWW|0|0|2025-12-15",
        b"OTC|TWO|Two Inc|Dee ATS|DDDD|300|3|2025-12-15",
        b"OTC|TWO|Two Inc|Eee ATS|EEEE|299|2|2025-12-15",
        # One venue, with more shares than a double holds the square of exactly: HHI 10,000.
        b"OTC|ONE|One Inc|Oh ATS|OOOO|8519968094|1|2025-12-15",
    ]
    firms = [
        b"OTC|TWO|Two Inc|Dee Firm|DDDD|700|4|2025-12-15",
        b"OTC|TWO|Two Inc|Eff Firm|FFFF|1000|9|2025-12-15",
    ]
    (data_dir / "ats.csv").write_bytes(b"\n".join([header, *ats]))
    (data_dir / "firms.csv").write_bytes(b"\n".join([header, *firms]))
    week = {"tier": "OTCE", "week": SAMPLE_WEEK}
    run_pipeline("otc.ingest_week", {**week, "path": "ats.csv"})
    run_pipeline("otc.ingest_week", {**week, "venue_type": "non_ats", "path": "firms.csv"})

    venues: dict[tuple, dict] = {}
    for t in Trade.objects.filter(**week):
        v = venues.setdefault((t.symbol, t.venue_mpid), {"shares": 0, "trades": 0, "ats": 0})
        v["shares"] += t.shares
        v["trades"] += t.trades
        v["ats"] += t.shares if t.venue_type == "ats" else 0
        v["name"] = max(v.get("name", ""), t.venue_name)
    expected = {}
    for symbol in {s for s, _ in venues}:
        mine = {mpid: v for (s, mpid), v in venues.items() if s == symbol}
        total = sum(v["shares"] for v in mine.values())
        top = min(mine, key=lambda mpid: (-mine[mpid]["shares"], mpid))
        expected[symbol] = (
            total,
            sum(v["trades"] for v in mine.values()),
            len(mine),
            top,
            mine[top]["name"],
            mine[top]["shares"] / total if total else None,
            sum((v["shares"] * 100 / total) ** 2 for v in mine.values()) if total else None,
            sum(v["ats"] for v in mine.values()),
            sum(v["ats"] for v in mine.values()) / total if total else None,
        )
    fields = (
        "total_shares", "total_trades", "venue_count", "top_venue_mpid", "top_venue_name",
        "top_venue_share", "hhi", "ats_shares", "ats_share",
    )  # fmt: skip
    found = {m.symbol: tuple(getattr(m, f) for f in fields) for m in MetricsDaily.objects.all()}

    def rounded(metrics):
        return {
            k: tuple(round(x, 9) if isinstance(x, float) else x for x in v)
            for k, v in metrics.items()
        }

    assert rounded(found) == rounded(expected)
    assert found["TIE"][3:5] == ("AAAA", "Ay ATS")
    assert found["NIL"][3:7] == ("WWWW", "Wu ATS", None, None)
    assert found["TWO"][2:5] == (3, "DDDD", "Dee Firm")  # 1,000 shares, as FFFF has
    assert found["ONE"][5:7] == (1.0, 10_000.0)


def test_a_repeat_within_a_symbols_lines_gives_the_fresh_way_up_at_once(
    data_dir, run_pipeline, monkeypatch
):
    # FINRA's files come sorted by symbol: the fresh way sees a repeated symbol and MPID among
    # one symbol's lines itself, instead of parsing the rest for a COPY the server already
    # refused. The staged way then loads the first and rejects the repeat.
    from otc import loader

    copied = []
    copy = loader.copy_rows

    def counting_copy(table, types, rows):
        def counted():
            for row in rows:
                copied.append(row[3])  # the symbol
                yield row

        return copy(table, types, counted() if table == "otc_trades" else rows)

    monkeypatch.setattr(loader, "copy_rows", counting_copy)
    lines = SAMPLE.read_bytes().split(b"\n")
    (data_dir / "repeat.csv").write_bytes(b"\n".join([lines[0], lines[1], lines[1], *lines[2:101]]))

    execution = run_pipeline("otc.ingest_week", {**SAMPLE_PARAMS, "path": "repeat.csv"})

    assert execution.status == Status.COMPLETED, execution.error_message
    assert (execution.result["rows_loaded"], execution.result["rejected_by_reason"]) == (
        100,
        {"duplicate": 1},
    )
    assert list(RejectedRow.objects.values_list("line_number", "reason")) == [(3, "duplicate")]
    postgres = connection.vendor == "postgresql"
    assert copied == (["AABB"] if postgres else [])  # the fresh way stopped at line 3


def test_a_weeks_first_file_reckons_its_totals_as_it_loads_and_they_match_the_sql(
    data_dir, run_pipeline, monkeypatch
):
    # The fresh way reckons each symbol's totals while it parses when its rows are the
    # tier-week's first (PostgreSQL); the metrics they give are those the SQL reads from
    # otc_trades, to the last bit: a recompute changes nothing. A second file goes the SQL way.
    # Volumes of up to 3 x 10^8 a venue (sums of squares past a double's exact integers: summed
    # as doubles, the two ways' HHI differed), ties, a single venue of 8.5 billion shares, and
    # each symbol's lines in several runs (a file in another order than FINRA's).
    from otc import metrics
    from otc.totals import SymbolTotals

    reckoned = []
    compute = metrics.compute_week

    def recording(tier, week, totals=None):
        reckoned.append(type(totals))
        return compute(tier, week, totals)

    monkeypatch.setattr(metrics, "compute_week", recording)
    header = SAMPLE.read_bytes().split(b"\n", 1)[0]
    rng = random.Random(8)
    lines = [
        f"OTC|S{s:03d}|Issue {s}|Venue {v} ATS|V{v:02d}|{volume}|{v + 1}|2025-12-15".encode()
        for s in range(60)
        for v in range(rng.randint(1, 30))
        for volume in [rng.choice([0, 10**7, 10**7, rng.randint(10**7, 3 * 10**8)])]
    ]
    lines.append(b"OTC|ONE|One Inc|Oh ATS|OOOO|8519968094|1|2025-12-15")
    rng.shuffle(lines)
    (data_dir / "ats.csv").write_bytes(b"\n".join([header, *lines]))
    firms = [line.replace(b" ATS|V", b" Firm|V") for line in lines[:300]]
    (data_dir / "firms.csv").write_bytes(b"\n".join([header, *firms]))
    week = {"tier": "OTCE", "week": SAMPLE_WEEK}

    def metric_rows():
        return list(MetricsDaily.objects.order_by("symbol").values_list(*METRIC_FIELDS))

    assert run_pipeline("otc.ingest_week", {**week, "path": "ats.csv"}).status == Status.COMPLETED
    first = metric_rows()
    assert run_pipeline("otc.recompute_metrics", week).status == Status.COMPLETED
    assert metric_rows() == first
    assert len(first) == 61
    assert MetricsDaily.objects.get(symbol="ONE").hhi == 10_000.0
    second = {**week, "venue_type": "non_ats", "path": "firms.csv"}
    assert run_pipeline("otc.ingest_week", second).status == Status.COMPLETED
    both = metric_rows()
    assert run_pipeline("otc.recompute_metrics", week).status == Status.COMPLETED
    assert metric_rows() == both != first

    postgres = connection.vendor == "postgresql"
    none = type(None)
    assert reckoned == [SymbolTotals if postgres else none, none, none, none]


METRIC_FIELDS = [f.name for f in MetricsDaily._meta.fields if f.name not in ("id",)]
