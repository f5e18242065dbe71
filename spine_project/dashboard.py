"""The operations dashboard (SPEC §7): ledger counts, oldest pending work, dead letters,
recent failures, and executions per hour by outcome as a server-side SVG chart.

The chart is drawn here as plain SVG rather than with a JavaScript charting library: it needs
no asset at all, works without internet and renders in any browser and in tests.
"""

from datetime import timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncHour
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from dlq.models import DeadLetter
from executions.models import Execution, LaneName, Status

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
    context = {
        **_admin_context(request),
        "title": "Operations dashboard",
        "statuses": Status.values,
        "lanes": _counts_by_lane(),
        "oldest_pending": _oldest_pending(now),
        "unresolved_dead_letters": DeadLetter.objects.filter(resolved_at__isnull=True).count(),
        "recent_failures": Execution.objects.filter(
            status__in=[Status.FAILED, Status.DEAD_LETTERED]
        ).order_by("-finished_at", "-created_at")[:10],
        "hourly": hourly_outcomes(now),
        "chart": None,
    }
    context["chart"] = outcome_chart_svg(context["hourly"])
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
    left, bottom, top = 40, 30, 24
    plot_h = height - bottom - top
    peak = max((sum(h["counts"].values()) for h in hourly), default=0) or 1
    slot = (width - left - 10) / max(len(hourly), 1)
    bars = []
    for i, h in enumerate(hourly):
        x = left + i * slot + 1
        y = top + plot_h
        for status, colour in OUTCOMES:
            n = h["counts"][status]
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
                    f"{timezone.localtime(h['hour']):%H:00} {status}: {n}",
                )
            )
    labels = [
        (
            f"{left + i * slot + slot / 2:.1f}",
            f"{height - 12}",
            f"{timezone.localtime(h['hour']):%H}",
        )
        for i, h in enumerate(hourly)
        if i % 3 == 0
    ]
    legend = [
        (f"{left + i * 130}", colour, f"{left + i * 130 + 16}", status)
        for i, (status, colour) in enumerate(OUTCOMES)
    ]
    return format_html(
        '<svg id="chart-hourly" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="Executions per hour by outcome">'
        '<text x="4" y="{ty}" font-size="11">{peak}</text>'
        '<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#999"/>'
        '<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>'
        "{bars}{labels}{legend}</svg>",
        w=width,
        h=height,
        ty=top + 4,
        peak=peak,
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
