"""A streaming parser for FINRA's weekly OTC Transparency file (SPEC §5).

Pipe-delimited, one header line, no quoting (names may contain commas), the last line may lack a
newline. Lines are read one at a time and turned into staging rows, so memory does not grow with
the file. A bad line becomes a row with a reject reason; only a wrong header or an empty file
stops the whole ingest.
"""

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import BinaryIO

from otc.errors import BadSourceFile
from otc.models import RejectReason, Tier

HEADER = (
    "tierDescription",
    "issueSymbolIdentifier",
    "issueName",
    "marketParticipantName",
    "MPID",
    "totalWeeklyShareQuantity",
    "totalWeeklyTradeCount",
    "lastUpdateDate",
)
DELIMITER = "|"
TIER_DESCRIPTIONS = {Tier.T1: "NMS Tier 1", Tier.T2: "NMS Tier 2", Tier.OTCE: "OTC"}

# Column limits of the tables (otc.models); longer values are rejected, not truncated.
MAX_LENGTHS = {"symbol": 20, "mpid": 10, "issue_name": 300, "venue_name": 300}
_BIGINT_MAX = 2**63 - 1
# ASCII digits only (`\d` would take "٣" or "３"), and few enough to fit a bigint: int() of a
# longer string is slow, and past 4,300 digits it raises instead of answering.
_INTEGER = re.compile(r"[+-]?0*([0-9]{1,19})")
_FAST_DIGITS = len(str(_BIGINT_MAX)) - 1  # any string of this many ASCII digits fits a bigint


def _clean_line(tier_description: str) -> re.Pattern:
    """A line of the tier that `_parse` loads as it stands: no field to strip, ASCII digits that
    fit a bigint, a publication date's shape. One C call matches most of a week's lines; what it
    does not match (or a date it matches that is no date, or too early) gets every check.

    `\\s` is what `str.strip()` strips (both ask `Py_UNICODE_ISSPACE`); NUL goes the long way.
    """

    def text(least: int, most: int) -> str:  # no whitespace at its ends, no delimiter, no NUL
        return rf"((?!\s)[^|\x00]{{{least},{most}}}(?<!\s))"

    volume = f"([0-9]{{1,{_FAST_DIGITS}}})"
    fields = [
        re.escape(tier_description),
        text(1, MAX_LENGTHS["symbol"]),
        text(0, MAX_LENGTHS["issue_name"]),
        text(0, MAX_LENGTHS["venue_name"]),
        text(1, MAX_LENGTHS["mpid"]),
        volume,
        volume,
        "([0-9]{4}-[0-9]{2}-[0-9]{2})",
    ]
    return re.compile(r"\|".join(fields))


_CLEAN_LINES = {description: _clean_line(description) for description in TIER_DESCRIPTIONS.values()}

# Raw landing stores a source as blocks of whole lines of about this many bytes (`otc.loader`).
BLOCK_BYTES = 256 * 1024

# The staging table's columns, in the order `stage_rows` yields them.
STAGE_COLUMNS = (
    "seq",
    "source_name",
    "line_number",
    "raw_line",
    "symbol",
    "issue_name",
    "venue_name",
    "mpid",
    "shares",
    "trades",
    "publication_date",
    "reject_reason",
    "reject_detail",
)


@dataclass(slots=True)
class SourceLine:
    """One data line of a source: its bytes as received, its fields, or why it is already bad."""

    source_name: str
    line_number: int
    raw: bytes
    fields: Sequence[str | None] | None = None  # None: split `raw` as a file line
    reject: tuple[str, str] | None = None  # set by a connector (e.g. a wrong summary type)


def read_file(stream: BinaryIO, source_name: str) -> Iterator[SourceLine]:
    """Yield the data lines of one FINRA file after checking its header; blank lines are skipped."""
    first = stream.readline()
    if not first.strip():
        raise BadSourceFile(f"{source_name}: the file is empty (expected the header line).")
    check_header(first, source_name)
    has_rows = False
    for number, raw in enumerate(stream, start=2):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        has_rows = True
        yield SourceLine(source_name, number, raw)
    if not has_rows:
        raise BadSourceFile(f"{source_name}: the file has a header but no data rows.")


def read_blocks(stream: BinaryIO, source_name: str) -> Iterator[tuple[int, bytes]]:
    """Yield a FINRA file's bytes as received, in blocks of whole lines, after checking its header.

    Each block is `(number of its first line, bytes)`; the header is line 1 and every line is
    kept, blank ones included, so the blocks put together are the file. Reads `BLOCK_BYTES` at a
    time: no per-line work in Python.
    """
    first = stream.readline()
    if not first.strip():
        raise BadSourceFile(f"{source_name}: the file is empty (expected the header line).")
    check_header(first, source_name)
    number, pending = 1, [first]  # the start of a line not yet ended, in pieces
    while chunk := stream.read(BLOCK_BYTES):
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:  # inside a line longer than a block: keep the piece, join once it ends
            pending.append(chunk)
            continue
        block = b"".join([*pending, chunk[:cut]])
        pending = [chunk[cut:]]
        yield number, block
        number += block.count(b"\n")
    if rest := b"".join(pending):  # the last line, without a newline
        yield number, rest


def line_blocks(lines: Iterable[SourceLine]) -> Iterator[tuple[str, int, bytes]]:
    """Blocks of consecutive lines of each source: `(source name, first line number, bytes)`.

    For sources that come as lines (the FINRA API): each line's bytes followed by a newline. A
    block ends at `BLOCK_BYTES`, at a new source, or where the numbering skips.
    """
    parts: list[bytes] = []
    name, first, following, size = "", 0, 0, 0
    for line in lines:
        if parts and (
            line.source_name != name or line.line_number != following or size >= BLOCK_BYTES
        ):
            yield name, first, b"".join(parts)
            parts, size = [], 0
        if not parts:
            name, first = line.source_name, line.line_number
        parts.append(line.raw + b"\n")
        size += len(line.raw) + 1
        following = line.line_number + 1
    if parts:
        yield name, first, b"".join(parts)


def block_lines(first_line: int, block: bytes) -> Iterator[tuple[int, bytes]]:
    """The numbered lines of a block, without their newlines (a CR of a CRLF stays)."""
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    return enumerate(lines, start=first_line)


def check_header(first_line: bytes, source_name: str) -> None:
    """Raise `BadSourceFile` naming the difference unless `first_line` is FINRA's header."""
    text = first_line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    found = tuple(text.split(DELIMITER))
    if found == HEADER:
        return
    missing = [c for c in HEADER if c not in found]
    unexpected = [c for c in found if c not in HEADER]
    problem = []
    if missing:
        problem.append(f"missing {', '.join(missing)}")
    if unexpected:
        problem.append(f"unexpected {', '.join(repr(c) for c in unexpected[:5])}")
    if not problem:
        problem.append("columns out of order")
    raise BadSourceFile(
        f"{source_name}: wrong header ({'; '.join(problem)}). Expected "
        f"{DELIMITER.join(HEADER)!r}, got {text[:300]!r}."
    )


def stored_text(raw: bytes) -> str:
    """A line's bytes as the text the tables store: undecodable bytes and NULs backslash-escaped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def stage_rows(lines: Iterable[SourceLine], *, tier: str, week: date) -> Iterator[tuple]:
    """Turn source lines into staging rows (`STAGE_COLUMNS`): valid, or with a reject reason.

    Each row carries its line's text as stored (`stored_text`), for `otc_rejected_rows`: a
    valid line may still be rejected as a duplicate by the loader's SQL.
    """
    expected_tier = TIER_DESCRIPTIONS[Tier(tier)]
    week_end = week + timedelta(days=4)
    no_values = (None,) * 7
    for seq, line in enumerate(lines, start=1):
        try:  # decoded once, for the fields
            text = line.raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        parsed, reject = _parse(line, expected_tier, week_end, text)
        if reject is None:
            raw_line = text if text is not None else stored_text(line.raw)
            yield (seq, line.source_name, line.line_number, raw_line, *parsed, None, None)
        else:
            raw_line = stored_text(line.raw)
            yield (seq, line.source_name, line.line_number, raw_line, *no_values, *reject)


def _parse(line: SourceLine, expected_tier: str, week_end: date, text: str | None = None):
    """`(values, None)` or `(None, (reason, detail))`; `text` is `line.raw` decoded, if it is.

    Written for speed as well (about a million calls per large week): a clean line (nearly all
    of them) is one regular expression (`_clean_line`; issue 8: 2.2 -> 1.4 s a million lines),
    the rest runs straight through the checks, and a check that fails works out its detail only
    then.
    """
    if line.reject is not None:
        return None, line.reject
    fields = line.fields
    if (
        fields is None
        and text is not None
        and (clean := _CLEAN_LINES[expected_tier].fullmatch(text))
    ):
        symbol, issue_name, venue_name, mpid, shares, trades, published = clean.groups()
        try:
            publication = date.fromisoformat(published)
        except ValueError:  # shaped like a date, but none (2025-02-30): rejected below
            pass
        else:
            if publication > week_end:
                volume = int(shares), int(trades)
                return (symbol, issue_name, venue_name, mpid, *volume, publication), None
    if fields is None:
        if b"\x00" in line.raw:
            return None, (RejectReason.BAD_ENCODING, "the line contains NUL bytes")
        if text is None:
            try:
                text = line.raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"not UTF-8: {exc.reason} at byte {exc.start}"
                return None, (RejectReason.BAD_ENCODING, detail)
        fields = text.split(DELIMITER)
    elif (unstorable := _unstorable(fields)) is not None:
        return None, (RejectReason.BAD_ENCODING, unstorable)
    if len(fields) != len(HEADER):
        return None, (
            RejectReason.FIELD_COUNT,
            f"expected {len(HEADER)} fields, got {len(fields)}",
        )
    tier_desc, symbol, issue_name, venue_name, mpid, shares, trades, published = [
        f.strip() if f else "" for f in fields
    ]
    if tier_desc != expected_tier:
        return None, (
            RejectReason.TIER_MISMATCH,
            f"tierDescription {tier_desc!r}, expected {expected_tier!r}",
        )
    if not symbol:
        return None, (RejectReason.EMPTY_SYMBOL, "issueSymbolIdentifier is empty")
    if not mpid:
        return None, (RejectReason.EMPTY_VENUE, "MPID is empty")
    if (
        len(symbol) > MAX_LENGTHS["symbol"]
        or len(mpid) > MAX_LENGTHS["mpid"]
        or len(issue_name) > MAX_LENGTHS["issue_name"]
        or len(venue_name) > MAX_LENGTHS["venue_name"]
    ):
        values = {
            "symbol": symbol,
            "mpid": mpid,
            "issue_name": issue_name,
            "venue_name": venue_name,
        }
        name, value = next((n, v) for n, v in values.items() if len(v) > MAX_LENGTHS[n])
        return None, (
            RejectReason.VALUE_TOO_LONG,
            f"{name} has {len(value)} characters (at most {MAX_LENGTHS[name]})",
        )
    volumes = []
    for label, value in (("totalWeeklyShareQuantity", shares), ("totalWeeklyTradeCount", trades)):
        if value.isascii() and value.isdigit() and len(value) <= _FAST_DIGITS:
            volumes.append(int(value))  # the common case: a plain number that fits a bigint
            continue
        digits = _INTEGER.fullmatch(value)
        number = int(digits[1]) * (-1 if value[0] == "-" else 1) if digits else None
        if number is None or abs(number) > _BIGINT_MAX:
            return None, (RejectReason.NON_NUMERIC_VOLUME, f"{label} is {value[:40]!r}")
        if number < 0:
            return None, (RejectReason.NEGATIVE_VOLUME, f"{label} is {number}")
        volumes.append(number)
    if not published:  # unknown publication date: loaded without one
        return (symbol, issue_name, venue_name, mpid, volumes[0], volumes[1], None), None
    try:
        publication = date.fromisoformat(published)
    except ValueError:
        return None, (RejectReason.BAD_DATE, f"lastUpdateDate is {published[:40]!r}")
    if publication <= week_end:
        return None, (
            RejectReason.PUBLISHED_TOO_EARLY,
            f"lastUpdateDate {publication} is not after the week ending {week_end}: "
            "the file cannot describe this week",
        )
    return (symbol, issue_name, venue_name, mpid, volumes[0], volumes[1], publication), None


def _unstorable(fields: Sequence[str | None]) -> str | None:
    """Why a connector's field cannot go into a text column (JSON can carry a "\\u0000" or a lone
    surrogate such as "\\ud800"; PostgreSQL, SQLite and UTF-8 cannot), or None."""
    for field in fields:
        if not field:
            continue
        if "\x00" in field:
            return "a field contains NUL characters"
        if not field.isascii():
            try:
                field.encode("utf-8")
            except UnicodeEncodeError:
                return "a field contains a lone surrogate"
    return None
