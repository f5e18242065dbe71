"""The streaming parser: header checks, per-line validation, FINRA's file quirks."""

import io
from datetime import date

import pytest

from otc.errors import BadSourceFile
from otc.parser import HEADER, STAGE_COLUMNS, SourceLine, read_file, stage_rows

HEADER_LINE = "|".join(HEADER).encode() + b"\n"
WEEK = date(2025, 11, 17)


def parse(body: bytes, tier="OTCE"):
    lines = read_file(io.BytesIO(HEADER_LINE + body), "week.csv")
    return [
        dict(zip(STAGE_COLUMNS, row, strict=True))
        for row in stage_rows(lines, tier=tier, week=WEEK)
    ]


def test_a_good_line_keeps_commas_and_the_last_line_may_lack_a_newline():
    rows = parse(
        b"OTC|AACAY|AAC Technologies, Inc ADR|ARCA GLOBAL OTC|ARCA|12746|56|2025-12-15\r\n"
        b"OTC|AABB|Asia Broadband Inc|OTCX OTC LINK ECN ATS|OTCX|40313|3|2025-12-15"
    )
    assert [
        (r["line_number"], r["symbol"], r["issue_name"], r["shares"], r["trades"]) for r in rows
    ] == [
        (2, "AACAY", "AAC Technologies, Inc ADR", 12746, 56),
        (3, "AABB", "Asia Broadband Inc", 40313, 3),
    ]
    assert rows[0]["publication_date"] == date(2025, 12, 15)
    assert rows[0]["reject_reason"] is None
    assert (
        rows[0]["raw_line"]
        == "OTC|AACAY|AAC Technologies, Inc ADR|ARCA GLOBAL OTC|ARCA|12746|56|2025-12-15"
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"OTC|AABB|Asia|OTCX ATS|OTCX|40313|2025-12-15", "field_count"),
        (b"OTC|AABB|Asia|OTCX ATS|OTCX|4O313|3|2025-12-15", "non_numeric_volume"),
        (b"OTC|AABB|Asia|OTCX ATS|OTCX|40313|-3|2025-12-15", "negative_volume"),
        (b"OTC| |Asia|OTCX ATS|OTCX|40313|3|2025-12-15", "empty_symbol"),
        (b"OTC|AABB|Asia|OTCX ATS||40313|3|2025-12-15", "empty_venue"),
        (b"OTC|AABB|Asia \xff\xfe|OTCX ATS|OTCX|40313|3|2025-12-15", "bad_encoding"),
        (b"OTC|AABB|Asia\x00|OTCX ATS|OTCX|40313|3|2025-12-15", "bad_encoding"),
        (b"OTC|AABB|Asia|OTCX ATS|OTCX|40313|3|15/12/2025", "bad_date"),
        (b"NMS Tier 1|AABB|Asia|OTCX ATS|OTCX|40313|3|2025-12-15", "tier_mismatch"),
        (b"OTC|AABB|Asia|OTCX ATS|OTCX|40313|3|2025-11-21", "published_too_early"),
        (b"OTC|" + b"A" * 21 + b"|Asia|OTCX ATS|OTCX|40313|3|2025-12-15", "value_too_long"),
    ],
)
def test_a_bad_line_is_rejected_with_its_reason(line, reason):
    (row,) = parse(line + b"\n")
    assert (row["line_number"], row["reject_reason"], row["symbol"]) == (2, reason, None)
    assert row["reject_detail"]


@pytest.mark.parametrize(
    "volume",
    ["٣٣", "１２", "9" * 20, "9" * 5000, "1e3", "0x10", "1_000"],
    ids=["arabic-indic", "fullwidth", "past-bigint", "past-int-digit-limit", "exp", "hex", "us"],
)
def test_a_volume_that_is_not_ascii_digits_fitting_a_bigint_is_rejected(volume):
    # found by tests/fuzz: non-ASCII digits used to load, 4,301+ digits used to crash the ingest
    (row,) = parse(f"OTC|AABB|Asia|OTCX ATS|OTCX|{volume}|3|2025-12-15\n".encode())
    assert (row["reject_reason"], row["shares"]) == ("non_numeric_volume", None)


def test_leading_zeros_are_a_number_however_many():
    (row,) = parse(b"OTC|AABB|Asia|OTCX ATS|OTCX|" + b"0" * 5000 + b"42|+007|2025-12-15\n")
    assert (row["reject_reason"], row["shares"], row["trades"]) == (None, 42, 7)


def test_a_missing_publication_date_loads_without_one():
    (row,) = parse(b"OTC|AABB|Asia|OTCX ATS|OTCX|40313|3|\n")
    assert (row["reject_reason"], row["shares"], row["publication_date"]) == (None, 40313, None)


def test_bad_bytes_are_kept_escaped_in_the_raw_line():
    (row,) = parse(b"OTC|AABB|Asia \xff|OTCX ATS|OTCX|1|1|2025-12-15\n")
    assert row["raw_line"] == "OTC|AABB|Asia \\xff|OTCX ATS|OTCX|1|1|2025-12-15"


def test_blank_lines_are_skipped_but_line_numbers_stay_true():
    rows = parse(b"\nOTC|AABB|Asia|OTCX ATS|OTCX|1|1|2025-12-15\n\n")
    assert [r["line_number"] for r in rows] == [3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (HEADER_LINE, "header but no data rows"),
        (b"symbol|name|volume\nAABB|x|1\n", "wrong header (missing tierDescription"),
        (HEADER_LINE.replace(b"MPID|", b""), "wrong header (missing MPID)"),
    ],
)
def test_an_empty_file_or_a_wrong_header_is_refused_naming_the_problem(content, message):
    with pytest.raises(BadSourceFile) as exc:
        list(read_file(io.BytesIO(content), "week.csv"))
    assert message in str(exc.value)
    assert str(exc.value).startswith("week.csv: ")


def test_a_byte_order_mark_before_the_header_is_accepted():
    lines = list(
        read_file(io.BytesIO(b"\xef\xbb\xbf" + HEADER_LINE + b"OTC|A|n|v|V|1|1|2025-12-15"), "f")
    )
    assert [line.line_number for line in lines] == [2]


@pytest.mark.parametrize(
    "symbol, detail",
    [
        ("AB\x00C", "a field contains NUL characters"),
        ("AB\ud800C", "a field contains a lone surrogate"),
        ("ÄB\x00C", "a field contains NUL characters"),
    ],
)
def test_a_connectors_field_no_text_column_can_hold_is_rejected_not_loaded(symbol, detail):
    fields = ["OTC", symbol, "Issue", "Venue", "MPID", "1", "1", ""]
    line = SourceLine("api", 7, b'{"issueSymbolIdentifier":"AB?C"}', fields=fields)
    (row,) = stage_rows([line], tier="OTCE", week=WEEK)
    row = dict(zip(STAGE_COLUMNS, row, strict=True))
    assert (row["line_number"], row["symbol"], row["reject_reason"], row["reject_detail"]) == (
        7,
        None,
        "bad_encoding",
        detail,
    )
    assert row["raw_line"] == '{"issueSymbolIdentifier":"AB?C"}'


def test_a_connectors_non_ascii_field_loads():
    fields = ["OTC", "ÄBC", "Société Générale", "Venue", "MPID", "1", "1", ""]
    (row,) = stage_rows([SourceLine("api", 2, b"{}", fields=fields)], tier="OTCE", week=WEEK)
    row = dict(zip(STAGE_COLUMNS, row, strict=True))
    assert (row["symbol"], row["issue_name"], row["reject_reason"]) == (
        "ÄBC",
        "Société Générale",
        None,
    )


def test_a_connector_reject_is_kept():
    line = SourceLine("api", 1, b"{}", reject=("wrong_summary_type", "totals"))
    (row,) = stage_rows([line], tier="OTCE", week=WEEK)
    assert row[-2:] == ("wrong_summary_type", "totals")


def test_blocks_are_the_file_in_whole_lines_numbered_from_the_header(monkeypatch):
    from otc import parser

    monkeypatch.setattr(parser, "BLOCK_BYTES", 64)
    body = b"".join(b"OTC|S%02d|Issue|Venue|V|1|1|2025-12-15\r\n" % n for n in range(5))
    long_line = b"OTC|LONG|" + b"x" * 200 + b"|Venue|V|1|1|2025-12-15\n"
    data = HEADER_LINE + body + b"\n" + long_line + b"OTC|LAST|no newline|V|V|1|1|2025-12-15"

    blocks = list(parser.read_blocks(io.BytesIO(data), "week.csv"))

    assert b"".join(block for _, block in blocks) == data
    numbered = [line for first, block in blocks for line in parser.block_lines(first, block)]
    assert numbered == list(enumerate(data.split(b"\n"), start=1))  # CRs kept, blank line too
    assert all(block.endswith(b"\n") for _, block in blocks[:-1])
    assert max(len(block) for _, block in blocks) > 200  # the long line stayed whole


def test_blocks_refuse_a_wrong_header_or_an_empty_file_before_anything_lands():
    from otc.parser import read_blocks

    with pytest.raises(BadSourceFile, match="week.csv: wrong header"):
        next(read_blocks(io.BytesIO(b"symbol|volume\nAABB|1\n"), "week.csv"))
    with pytest.raises(BadSourceFile, match="week.csv: the file is empty"):
        next(read_blocks(io.BytesIO(b""), "week.csv"))


def test_line_blocks_start_again_at_a_new_source_or_where_numbering_skips(monkeypatch):
    from otc import parser

    lines = [
        SourceLine("a", 1, b"one"),
        SourceLine("a", 2, b"two"),
        SourceLine("a", 4, b"four"),  # line 3 is not there
        SourceLine("b", 5, b"x" * 70),
        SourceLine("b", 6, b"six"),  # the block before is over BLOCK_BYTES
    ]
    monkeypatch.setattr(parser, "BLOCK_BYTES", 64)

    assert list(parser.line_blocks(lines)) == [
        ("a", 1, b"one\ntwo\n"),
        ("a", 4, b"four\n"),
        ("b", 5, b"x" * 70 + b"\n"),
        ("b", 6, b"six\n"),
    ]


@pytest.mark.parametrize("tier", ["T1", "T2", "OTCE"])
def test_every_line_of_the_real_week_takes_the_clean_lines_shortcut(tier):
    # The shortcut (`parser._clean_line`) is for FINRA's lines as they come: if it stopped
    # matching them, every line would still load, the long way, and only the benchmark would
    # tell. The real OTC week, its lines under each tier's description.
    from pathlib import Path

    from otc import parser

    description = parser.TIER_DESCRIPTIONS[tier]
    text = (Path(__file__).parents[2] / "data" / "otc_sample.csv").read_text("utf-8")
    lines = [description + line[3:] for line in text.splitlines()[1:] if line]

    assert len(lines) == 5328
    assert [line for line in lines if not parser._CLEAN_LINES[description].fullmatch(line)] == []
