"""The operations dashboard (SPEC §7): ledger counts, oldest pending work, dead letters,
recent failures, and two server-side SVG charts: executions per hour by outcome, and a symbol's
weekly OTC volume by venue.

The chart is drawn here as plain SVG rather than with a JavaScript charting library: it needs
no asset at all, works without internet and renders in any browser and in tests.
"""

from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncHour
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from dlq.models import DeadLetter
from executions.models import Execution, LaneName, Status
from otc.selectors import top_symbols, weekly_volume_by_venue

CHART_HOURS = 24
OUTCOMES = [
    (Status.COMPLETED, "#2e8540"),
    (Status.FAILED, "#b3261e"),
    (Status.DEAD_LETTERED, "#7b1fa2"),
    (Status.CANCELLED, "#8a8a8a"),
]


def dashboard(request):
    """The dashboard page (wrapped by `admin_view`, so only staff reach it)."""
    now = timezone.now()
    symbols = top_symbols()
    symbol = (request.GET.get("symbol") or (symbols[0] if symbols else "")).strip().upper()[:20]
    tier = request.GET.get("tier") or None
    context = {
        **_admin_context(request),
        "title": "Operations dashboard",
        "statuses": Status.values,
        "lanes": _counts_by_lane(),
        "oldest_pending": _oldest_pending(now),
        "unresolved_dead_letters": DeadLetter.objects.filter(resolved_at__isnull=True).count(),
        # finished_at IS NOT NULL lets the (partial) finished_at index serve the newest first
        "recent_failures": Execution.objects.filter(
            status__in=[Status.FAILED, Status.DEAD_LETTERED], finished_at__isnull=False
        ).order_by("-finished_at", "-created_at")[:10],
        "hourly": hourly_outcomes(now),
        "chart": None,
        "symbol": symbol,
        "tier": tier,
        "symbols": top_symbols(),
    }
    context["chart"] = outcome_chart_svg(context["hourly"])
    context["venue_chart"] = venue_chart_svg(symbol, tier) if symbol else ""
    return TemplateResponse(request, "admin/spine_dashboard.html", context)


def _admin_context(request) -> dict:
    from django.contrib import admin

    return admin.site.each_context(request)


def _counts_by_lane() -> list[dict]:
    counts: dict[str, dict[str, int]] = {lane: {} for lane in LaneName.values}
    rows = Execution.objects.values_list("lane", "status").annotate(n=Count("id")).order_by()
    for lane, status, n in rows:
        counts.setdefault(lane, {})[status] = n
    return [
        {
            "lane": lane,
            "cells": [by_status.get(s, 0) for s in Status.values],
            "total": sum(by_status.values()),
        }
        for lane, by_status in counts.items()
    ]


def _oldest_pending(now) -> list[dict]:
    rows = (
        Execution.objects.filter(status=Status.PENDING)
        .values("lane")
        .annotate(oldest=Min("created_at"), n=Count("id"))
        .order_by("lane")
    )
    return [
        {
            "lane": r["lane"],
            "count": r["n"],
            "age_seconds": int((now - r["oldest"]).total_seconds()),
        }
        for r in rows
    ]


def hourly_outcomes(now, hours: int = CHART_HOURS) -> list[dict]:
    """Terminal executions per hour (by finish time) for the last `hours` hours, oldest first."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    buckets = {
        start + timedelta(hours=i): dict.fromkeys(s for s, _ in OUTCOMES) for i in range(hours)
    }
    rows = (
        Execution.objects.filter(finished_at__gte=start, status__in=[s for s, _ in OUTCOMES])
        .annotate(hour=TruncHour("finished_at"))
        .values_list("hour", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for hour, status, n in rows:
        if hour in buckets:
            buckets[hour][status] = n
    return [
        {"hour": hour, "counts": {s: c or 0 for s, c in counts.items()}}
        for hour, counts in sorted(buckets.items())
    ]


def outcome_chart_svg(hourly: list[dict], *, width: int = 720, height: int = 220) -> str:
    """A stacked bar per hour, one colour per outcome, with a legend and hour labels."""
    columns = [
        (
            f"{timezone.localtime(h['hour']):%H}",
            f"{timezone.localtime(h['hour']):%H:00}",
            h["counts"],
        )
        for h in hourly
    ]
    return stacked_bars_svg(
        columns,
        OUTCOMES,
        svg_id="chart-hourly",
        aria_label="Executions per hour by outcome",
        label_every=3,
        width=width,
        height=height,
    )


VENUE_COLOURS = ["#1f5fa8", "#e07b00", "#2e8540", "#b3261e", "#7b1fa2", "#00838f", "#8a8a8a"]
TOP_VENUES = 6


def venue_volume(symbol: str, tier: str | None = None, weeks: int = 12) -> tuple[list, list]:
    """Columns (one per week) and series (top venues, then `other`) of a symbol's OTC volume."""
    rows = weekly_volume_by_venue(symbol, tier=tier, weeks=weeks)
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["venue_mpid"]] = totals.get(row["venue_mpid"], 0) + row["shares"]
    top = sorted(totals, key=lambda v: (-totals[v], v))[:TOP_VENUES]
    series = [(venue, VENUE_COLOURS[i]) for i, venue in enumerate(top)]
    if len(totals) > len(top):
        series.append(("other", VENUE_COLOURS[-1]))
    by_week: dict = {}
    for row in rows:
        venue = row["venue_mpid"] if row["venue_mpid"] in top else "other"
        counts = by_week.setdefault(row["week"], {name: 0 for name, _ in series})
        counts[venue] += row["shares"]
    columns = [(f"{week:%m-%d}", f"week of {week}", counts) for week, counts in by_week.items()]
    return columns, series


def venue_chart_svg(symbol: str, tier: str | None = None) -> str:
    """A stacked bar per week, one colour per venue: the symbol's off-exchange shares."""
    columns, series = venue_volume(symbol, tier)
    if not columns:
        return ""
    return stacked_bars_svg(
        columns,
        series,
        svg_id="chart-venues",
        aria_label=f"Weekly OTC volume of {symbol} by venue",
        legend_width=90,
    )


MAX_BAR_WIDTH = 48


def _compact(n: int) -> str:
    """1234567 -> 1.2M: the axis label must fit in the left margin."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def stacked_bars_svg(
    columns: list[tuple[str, str, dict[str, int]]],
    series: Sequence[tuple[str, str]],
    *,
    svg_id: str,
    aria_label: str,
    label_every: int = 1,
    legend_width: int = 130,
    width: int = 720,
    height: int = 220,
) -> str:
    """Stacked bars: `columns` are (axis label, tooltip prefix, value per series name)."""
    left, bottom, top = 40, 30, 24
    plot_h = height - bottom - top
    peak = max((sum(c[2].values()) for c in columns), default=0) or 1
    slot = (width - left - 10) / max(len(columns), 1)
    bars = []
    bar_w = min(slot - 2, MAX_BAR_WIDTH)
    for i, (_, tip, values) in enumerate(columns):
        x = left + i * slot + (slot - bar_w) / 2
        y: float = top + plot_h
        for name, colour in series:
            n = values.get(name, 0)
            if not n:
                continue
            bar_h = plot_h * n / peak
            y -= bar_h
            bars.append(
                (
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{slot - 2:.1f}",
                    f"{bar_h:.1f}",
                    colour,
                    f"{tip} {name}: {n}",
                )
            )
    labels = [
        (f"{left + i * slot + slot / 2:.1f}", f"{height - 12}", label)
        for i, (label, _, _) in enumerate(columns)
        if i % label_every == 0
    ]
    legend = [
        (f"{left + i * legend_width}", colour, f"{left + i * legend_width + 16}", name)
        for i, (name, colour) in enumerate(series)
    ]
    return format_html(
        '<svg id="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="{aria}">'
        '<text x="4" y="{ty}" font-size="11">{peak}</text>'
        '<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#999"/>'
        '<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>'
        "{bars}{labels}{legend}</svg>",
        svg_id=svg_id,
        aria=aria_label,
        w=width,
        h=height,
        ty=top + 4,
        peak=_compact(peak),
        left=left,
        top=top,
        base=top + plot_h,
        right=width - 10,
        bars=format_html_join(
            "",
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}">'
            "<title>{}</title></rect>",
            bars,
        ),
        labels=format_html_join(
            "", '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>', labels
        ),
        legend=format_html_join(
            "",
            '<rect x="{}" y="4" width="12" height="12" fill="{}"/>'
            '<text x="{}" y="14" font-size="11">{}</text>',
            legend,
        ),
    )
