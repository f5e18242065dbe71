"""Hypothesis strategies for FINRA weekly files: good rows, broken rows, and noise.

A generated file is a list of `Line`s: each knows its bytes and what the parser must make of it:
`expected` values for a good row, `reason` for a row broken in one known way, or neither for
noise (arbitrary bytes: loaded or rejected, but never a crash).
"""

import os
import re
import string
from dataclasses import dataclass
from datetime import date

from hypothesis import settings
from hypothesis import strategies as st

from otc.parser import HEADER

WEEK = date(2025, 11, 17)  # a Monday; the week ends on Friday 2025-11-21
TIER_DESCRIPTION = "OTC"  # tier OTCE

# Anything but the delimiter, line breaks and NUL (which have meanings of their own in a line).
_TEXT = st.characters(blacklist_characters="|\r\n\x00", blacklist_categories=("Cs",))
_SYMBOLS = string.ascii_uppercase + string.digits + "."
_MPIDS = string.ascii_uppercase + string.digits


def examples(count: int) -> int:
    """`count` examples in `make test`; at least the loaded profile's many under
    `HYPOTHESIS_PROFILE=explore` (a test's own `max_examples` would cap the profile's 5,000)."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "explore":
        return max(count, settings.default.max_examples)
    return count


@dataclass(frozen=True)
class Line:
    raw: bytes
    expected: tuple | None = None  # (symbol, issue, venue, mpid, shares, trades, published)
    reason: str | None = None


@st.composite
def good_fields(draw):
    published = draw(
        st.one_of(st.none(), st.dates(min_value=date(2025, 11, 22), max_value=date(2035, 1, 1)))
    )
    return {
        "tier": TIER_DESCRIPTION,
        "symbol": draw(st.text(_SYMBOLS, min_size=1, max_size=20)),
        "issue": draw(st.text(_TEXT, max_size=60)),
        "venue": draw(st.text(_TEXT, max_size=60)),
        "mpid": draw(st.text(_MPIDS, min_size=1, max_size=10)),
        "shares": draw(st.integers(0, 2**63 - 1)),
        "trades": draw(st.integers(0, 2**63 - 1)),
        "published": published,
        # leading zeros are still a number, however many (int() alone refuses past 4,300 digits)
        "zeros": draw(st.one_of(st.just(0), st.integers(1, 3), st.just(4_400))),
    }


def render(fields: dict) -> list[str]:
    published = fields["published"]
    return [
        fields["tier"],
        fields["symbol"],
        fields["issue"],
        fields["venue"],
        fields["mpid"],
        "0" * fields["zeros"] + str(fields["shares"]),
        str(fields["trades"]),
        published.isoformat() if isinstance(published, date) else (published or ""),
    ]


def good_line(fields: dict) -> Line:
    expected = (
        fields["symbol"],
        fields["issue"].strip(),
        fields["venue"].strip(),
        fields["mpid"],
        fields["shares"],
        fields["trades"],
        fields["published"],
    )
    return Line("|".join(render(fields)).encode(), expected=expected)


def _not_an_integer(text: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", text.strip()) is None


_UNICODE_DIGITS = "٠١٢٣٤٥٦٧٨٩０１２３４５６７８９۳߃"

non_numeric = st.one_of(
    st.text(_TEXT, max_size=30).filter(_not_an_integer),
    st.text(_UNICODE_DIGITS, min_size=1, max_size=12),  # digits, but not ASCII ones
    # beyond a bigint, and beyond the 4,300 digits int() converts
    st.one_of(st.integers(20, 6_000), st.just(4_301)).map(lambda n: "9" * n),
    st.integers(2**63, 2**70).map(str),
)
bad_dates = st.sampled_from(
    ["15/12/2025", "2025-13-01", "2025-02-30", "yesterday", "2025-12-15T", "12-15-2025"]
)


@st.composite
def broken_line(draw):
    """A good row broken in exactly one way, with the reason the parser must give."""
    fields = draw(good_fields())
    kind = draw(
        st.sampled_from(
            [
                "field_count",
                "non_numeric_volume",
                "negative_volume",
                "empty_symbol",
                "empty_venue",
                "tier_mismatch",
                "bad_encoding",
                "nul",
                "bad_date",
                "published_too_early",
                "value_too_long",
            ]
        )
    )
    reason = "bad_encoding" if kind == "nul" else kind
    parts = render(fields)
    if kind == "field_count":
        if draw(st.booleans()):
            del parts[draw(st.integers(0, len(parts) - 1))]
        else:
            parts.insert(draw(st.integers(0, len(parts))), draw(st.text(_TEXT, max_size=10)))
    elif kind == "non_numeric_volume":
        parts[draw(st.sampled_from([5, 6]))] = draw(non_numeric)
    elif kind == "negative_volume":
        parts[draw(st.sampled_from([5, 6]))] = str(-draw(st.integers(1, 2**63 - 1)))
    elif kind == "empty_symbol":
        parts[1] = draw(st.sampled_from(["", " ", "\t", "  "]))
    elif kind == "empty_venue":
        parts[4] = draw(st.sampled_from(["", " "]))
    elif kind == "tier_mismatch":
        parts[0] = draw(st.sampled_from(["NMS Tier 1", "NMS Tier 2", "otc", "OTCE", ""]))
    elif kind == "bad_date":
        parts[7] = draw(bad_dates)
    elif kind == "published_too_early":
        parts[7] = draw(st.dates(date(2000, 1, 1), date(2025, 11, 21))).isoformat()
    elif kind == "value_too_long":
        parts[1] = draw(st.text(_SYMBOLS, min_size=21, max_size=40))
    raw = "|".join(parts).encode()
    if kind == "bad_encoding":
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]))
        raw = raw[:at] + bad + raw[at:]
    elif kind == "nul":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\x00" + raw[at:]
    return Line(raw, reason=reason)


noise_line = st.binary(max_size=120).map(lambda b: Line(b.replace(b"\n", b" ")))

any_line = st.one_of(good_fields().map(good_line), broken_line(), noise_line)


@st.composite
def finra_file(draw, lines=any_line, min_lines=1, max_lines=25):
    """(file bytes, [(line number, Line)] for the lines that are not blank)."""
    chosen = draw(st.lists(lines, min_size=min_lines, max_size=max_lines))
    body = [("|".join(HEADER)).encode()]
    numbered = []
    for line in chosen:
        for _ in range(draw(st.integers(0, 2))):
            body.append(draw(st.sampled_from([b"", b" ", b"\r", b"\t "])))  # blank: skipped
        body.append(line.raw)
        if line.raw.rstrip(b"\r\n").strip():
            numbered.append((len(body), line))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = ending.join(body) + draw(st.sampled_from([b"", ending]))
    return data, numbered
