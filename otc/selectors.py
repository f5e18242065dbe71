"""Read-side queries over the OTC tables, for dashboards and the admin."""

from collections.abc import Iterator
from datetime import date
from typing import TypedDict

from django.db.models import Max, Sum

from otc.models import RawBlock, RawCapture, Trade
from otc.parser import block_lines, stored_text


class VenueWeek(TypedDict):
    """One venue's volume for a symbol in one tier-week."""

    week: date
    tier: str
    venue_mpid: str
    venue_name: str
    shares: int
    trades: int


def weekly_volume_by_venue(
    symbol: str, tier: str | None = None, weeks: int = 12
) -> list[VenueWeek]:
    """A symbol's shares and trades per venue for its latest `weeks` loaded weeks, oldest first.

    One row per week, tier and venue: `{week, tier, venue_mpid, venue_name, shares, trades}`.
    """
    rows = Trade.objects.filter(symbol=symbol.strip().upper())
    if tier:
        rows = rows.filter(tier=tier)
    latest = list(rows.order_by("-week").values_list("week", flat=True).distinct()[: max(weeks, 0)])
    if not latest:
        return []
    return list(
        rows.filter(week__in=latest)
        .values("week", "tier", "venue_mpid")
        .annotate(venue_name=Max("venue_name"), shares=Sum("shares"), trades=Sum("trades"))
        .order_by("week", "tier", "-shares", "venue_mpid")
    )


def top_symbols(limit: int = 20) -> list[str]:
    """The symbols with the most shares in the latest loaded week, most first."""
    latest = Trade.objects.aggregate(week=Max("week"))["week"]
    if latest is None:
        return []
    return list(
        Trade.objects.filter(week=latest)
        .values("symbol")
        .annotate(shares=Sum("shares"))
        .order_by("-shares", "symbol")
        .values_list("symbol", flat=True)[:limit]
    )


class CaptureIncomplete(Exception):
    """A capture's blocks stop or skip before its last line (retention took them meanwhile)."""


def raw_blocks(capture: RawCapture, *, per_query: int = 4) -> Iterator[tuple[int, bytes]]:
    """A capture's blocks as received, in order: `(number of the first line, bytes)`.

    Pages through the unique index, `per_query` blocks (about 1 MiB) a query, each query a short
    read of its own. Django's `.iterator()` would hold a cursor open `WITH HOLD` outside a
    transaction (an admin request), for which PostgreSQL materializes the whole result first:
    a 1M-line capture (84 MB) before the first byte of its download, or to show its first 200
    lines (first block after 0.115 s that way, 0.009 s this way, on the issue 8 VM).

    Yields nothing if retention deleted every block. Otherwise, for a `complete` capture (every
    capture landed as blocks), raises `CaptureIncomplete` where a line is missing: retention
    deletes a capture's blocks a batch at a time, first lines first, and a download it cuts into
    must fail rather than end, or start, short as if it were whole.
    """
    following, last = 1, 0
    while True:
        page = list(
            RawBlock.objects.filter(capture=capture, first_line__gt=last)
            .order_by("first_line")
            .values_list("first_line", "line_count", "data")[:per_query]
        )
        for first_line, line_count, data in page:
            if capture.complete and first_line != following:
                raise CaptureIncomplete(f"capture {capture.pk}: no block holds line {following}")
            yield first_line, bytes(data)
            last, following = first_line, first_line + line_count
        if len(page) < per_query:
            break
    if capture.complete and last and following <= capture.line_count:
        raise CaptureIncomplete(f"capture {capture.pk}: its lines stop before line {following}")


def raw_lines(capture: RawCapture) -> Iterator[tuple[int, str]]:
    """A capture's lines as received, numbered, as text: undecodable bytes backslash-escaped and
    CRs before the newline left out (as `otc.parser.read_file` reads lines and rejected rows
    keep them)."""
    # Two blocks (about 512 KiB) a query: the admin reads only the first 200 lines.
    for first_line, data in raw_blocks(capture, per_query=2):
        for number, line in block_lines(first_line, data):
            yield number, stored_text(line.rstrip(b"\r"))
