"""Property-based fuzzing of the FINRA parser (SPEC §5): every non-blank line becomes exactly one
staging row, loaded with its exact values or rejected with a known reason and a detail, at its
exact line number; nothing crashes; a wrong header is a `BadSourceFile`, never anything else."""

import io
import re
import string
from datetime import date, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from otc import parser
from otc.errors import BadSourceFile
from otc.models import RejectReason
from otc.parser import HEADER, STAGE_COLUMNS, SourceLine, _parse, read_file, stage_rows, stored_text
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


# Every character `str.strip()` strips, and some that look like it but are not (ZWSP, BOM, NUL).
_SPACES = [chr(c) for c in range(0x3001) if chr(c).isspace()] + ["\u200b", "\ufeff", "\x00"]
_PADS = st.text(st.sampled_from(_SPACES), min_size=1, max_size=2)
_NAMES = st.one_of(
    st.text(st.characters(blacklist_characters="|"), max_size=301), st.just("Nul\x00 Inc")
)
_ANY = st.one_of(
    st.text(max_size=25),
    st.integers(-5, 2**64).map(str),
    st.sampled_from(["OTC", "NMS Tier 1", "9" * 18, "9" * 19, "0" * 20, "2025-02-30", ""]),
)
_VOLUMES = st.one_of(
    st.integers(0, 10**19).map(str), st.sampled_from([str(2**63 - 1), str(2**63), "0" * 19])
)
# The values of a clean line (or, drawn from `_ANY`, not), field by field.
_VALUES = [
    st.just("OTC"),
    st.text(string.ascii_uppercase + ".", min_size=1, max_size=21),
    _NAMES,
    _NAMES,
    st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=11),
    _VOLUMES,
    _VOLUMES,
    st.dates(date(2025, 11, 1), date(2026, 12, 31)).map(date.isoformat),
]


@st.composite
def near_clean_lines(draw) -> str:
    """A line each of whose fields may be clean, padded, or anything at all; one may be
    missing or one too many."""
    fields = []
    for values in _VALUES:
        kind = draw(st.integers(0, 15))  # mostly clean
        value = draw(_ANY if kind == 0 else values)
        if kind == 1:
            value = draw(_PADS) + value
        elif kind == 2:
            value += draw(_PADS)
        fields.append(value)
    count = draw(st.sampled_from([8] * 8 + [7, 9]))
    return "|".join(fields[:count] + ["x"] * (count - 8))


@settings(max_examples=examples(500))
@given(text=near_clean_lines())
def test_a_clean_line_parses_the_same_by_its_shortcut_as_by_every_check(text):
    # `_parse` takes the lines its regular expression matches straight to their values; the
    # rest go through the checks one by one. Both must give the same for any line.
    line = SourceLine("week.csv", 2, text.encode("utf-8", "surrogatepass"))
    week_end = WEEK + timedelta(days=4)

    shortcut = _parse(line, "OTC", week_end, text)
    with pytest.MonkeyPatch.context() as patch:
        never = re.compile("(?!)")
        patch.setattr(parser, "_CLEAN_LINES", dict.fromkeys(parser._CLEAN_LINES, never))
        checked = _parse(line, "OTC", week_end, text)

    clean = parser._CLEAN_LINES["OTC"].fullmatch(text)
    event("clean" if clean else "loaded the long way" if checked[1] is None else "rejected")
    assert shortcut == checked
