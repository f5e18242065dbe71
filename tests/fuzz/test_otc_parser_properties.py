"""Property-based fuzzing of the FINRA parser (SPEC §5): every non-blank line becomes exactly one
staging row, loaded with its exact values or rejected with a known reason and a detail, at its
exact line number; nothing crashes; a wrong header is a `BadSourceFile`, never anything else."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otc.errors import BadSourceFile
from otc.models import RejectReason
from otc.parser import HEADER, STAGE_COLUMNS, read_file, stage_rows, stored_text
from tests.fuzz.strategies import WEEK, examples, finra_file

REASONS = set(RejectReason.values)
VALUES = ("symbol", "issue_name", "venue_name", "mpid", "shares", "trades", "publication_date")


def parse(data: bytes) -> list[dict]:
    lines = read_file(io.BytesIO(data), "week.csv")
    return [
        dict(zip(STAGE_COLUMNS, row, strict=True))
        for row in stage_rows(lines, tier="OTCE", week=WEEK)
    ]


@settings(max_examples=examples(300))
@given(finra_file())
def test_every_line_is_loaded_or_rejected_with_a_reason_at_its_line_number(generated):
    data, numbered = generated
    if not numbered:  # only blank lines after the header: the whole file is refused
        with pytest.raises(BadSourceFile, match="no data rows"):
            parse(data)
        return

    rows = parse(data)

    assert [r["line_number"] for r in rows] == [number for number, _ in numbered]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    for row, (_, line) in zip(rows, numbered, strict=True):
        values = tuple(row[c] for c in VALUES)
        if line.expected is not None:
            assert (row["reject_reason"], values) == (None, line.expected)
        elif line.reason is not None:
            assert row["reject_reason"] == line.reason, (line.raw, row["reject_detail"])
        if row["reject_reason"] is None:
            assert row["symbol"] and row["mpid"]
            assert 0 <= row["shares"] < 2**63 and 0 <= row["trades"] < 2**63
        else:
            assert row["reject_reason"] in REASONS
            assert row["reject_detail"]
            assert values == (None,) * 7
        assert row["raw_line"] == stored_text(line.raw.rstrip(b"\r\n"))  # as read_file yields it
        assert "\x00" not in row["raw_line"]  # PostgreSQL text cannot hold NUL


@settings(max_examples=examples(100))
@given(st.binary(max_size=300).filter(lambda b: b.rstrip(b"\r\n") != "|".join(HEADER).encode()))
def test_anything_but_the_header_first_is_a_bad_source_file(first_line):
    data = first_line.replace(b"\n", b" ") + b"\nOTC|A|a|v|M|1|1|2025-12-15\n"
    if data.lstrip(b"\xef\xbb\xbf").startswith("|".join(HEADER).encode() + b"\r"):
        return  # the header with a carriage return: a valid header
    try:
        parse(data)
    except BadSourceFile as exc:
        assert "week.csv" in str(exc)
    else:
        raise AssertionError(f"{first_line!r} was accepted as the header")
