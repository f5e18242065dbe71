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


def raw_lines(capture: RawCapture) -> Iterator[tuple[int, str]]:
    """A capture's lines as received, numbered, as text: undecodable bytes backslash-escaped and
    CRs before the newline left out (as `otc.parser.read_file` reads lines and rejected rows
    keep them)."""
    blocks = RawBlock.objects.filter(capture=capture).order_by("first_line")
    # Two blocks (about 512 KiB) a fetch: the admin reads only the first 200 lines.
    for first_line, data in blocks.values_list("first_line", "data").iterator(chunk_size=2):
        for number, line in block_lines(first_line, bytes(data)):
            yield number, stored_text(line.rstrip(b"\r"))
