"""Read-only admin pages for the OTC tables: only the ingest pipelines write them."""

from itertools import chain, islice

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import content_disposition_header

from otc.connectors.circuit import circuit_state, known_sources
from otc.models import MetricsDaily, RawCapture, RejectedRow, Trade
from otc.selectors import CaptureIncomplete, raw_blocks, raw_lines


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse and search; no add, change or delete. Counts are skipped on the big tables."""

    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # The remote sources' circuit breakers, as every worker sees them (state in Redis).
        for source in known_sources():
            state = circuit_state(source)
            level = messages.INFO if state == "closed" else messages.WARNING
            self.message_user(request, f"Source {source}: circuit {state}.", level=level)
        return super().changelist_view(request, extra_context)


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "week",
        "tier",
        "symbol",
        "issue_name",
        "venue_mpid",
        "venue_name",
        "venue_type",
        "shares",
        "trades",
    )
    list_filter = ("tier", "venue_type", "week")
    search_fields = ("=symbol", "=venue_mpid", "issue_name")
    date_hierarchy = "week"


@admin.register(MetricsDaily)
class MetricsDailyAdmin(ReadOnlyAdmin):
    list_display = (
        "week",
        "tier",
        "symbol",
        "total_shares",
        "total_trades",
        "trading_days",
        "avg_daily_shares",
        "venue_count",
        "top_venue_mpid",
        "top_venue_share",
        "hhi",
        "ats_share",
        "wow_change",
    )
    list_filter = ("tier", "trading_days", "week")
    search_fields = ("=symbol", "=top_venue_mpid")
    date_hierarchy = "week"


@admin.register(RejectedRow)
class RejectedRowAdmin(ReadOnlyAdmin):
    list_display = ("week", "tier", "venue_type", "source_name", "line_number", "reason", "detail")
    list_filter = ("reason", "tier", "venue_type", "week")
    search_fields = ("source_name", "raw_line")


@admin.register(RawCapture)
class RawCaptureAdmin(ReadOnlyAdmin):
    """Sources as received: open one to read its first lines, or download it whole."""

    list_display = (
        "captured_at",
        "tier",
        "week",
        "venue_type",
        "source",
        "source_name",
        "line_count",
        "download_link",
        "execution_id",
    )
    list_filter = ("tier", "venue_type", "source", "week")
    search_fields = ("=source_name", "=execution_id", "=content_hash")
    FIRST_LINES = 200

    def can_read_lines(self, request) -> bool:
        """A capture's lines (its blocks) need their own permission besides the capture's."""
        return self.has_view_permission(request) and request.user.has_perm("otc.view_rawblock")

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if self.can_read_lines(request) else [f for f in shown if f != "download_link"]

    def get_readonly_fields(self, request, obj=None):
        return ("first_lines",) if self.can_read_lines(request) else ()

    def get_urls(self):
        download = path(
            "<int:pk>/download/",
            self.admin_site.admin_view(self.download_view),
            name="otc_rawcapture_download",
        )
        return [download, *super().get_urls()]

    def download_view(self, request, pk: int):
        """The capture's bytes as received (a file's SHA-256 is the capture's `content_hash`)."""
        if not self.can_read_lines(request):
            raise PermissionDenied
        capture = get_object_or_404(RawCapture, pk=pk)
        blocks = (data for _, data in raw_blocks(capture))
        try:
            first = next(blocks, None)  # read before answering, so that no block means a 404
        except CaptureIncomplete as exc:
            raise Http404("Retention is deleting this capture's lines.") from exc
        if first is None:
            raise Http404("Retention has deleted this capture's lines.")
        response = StreamingHttpResponse(
            chain([first], blocks), content_type="text/plain; charset=utf-8"
        )
        response["Content-Disposition"] = content_disposition_header(True, _file_name(capture))
        return response

    @admin.display(description="download")
    def download_link(self, capture):
        url = reverse("admin:otc_rawcapture_download", args=[capture.pk])
        return format_html('<a href="{}">as received</a>', url)

    @admin.display(description="first lines")
    def first_lines(self, capture):
        try:
            numbered = list(islice(raw_lines(capture), self.FIRST_LINES))
        except CaptureIncomplete:
            return "Retention is deleting this capture's lines."
        if not numbered:
            return "Retention has deleted this capture's lines."
        text = "\n".join(f"{number:>7}  {line}" for number, line in numbered)
        url = reverse("admin:otc_rawcapture_download", args=[capture.pk])
        return format_html(
            '<pre>{}</pre><p><a href="{}">Download all {} lines as received</a></p>',
            text,
            url,
            capture.line_count,
        )


def _file_name(capture: RawCapture) -> str:
    """A file capture's own name; an API dataset's tier, week, venue type and name (JSONL)."""
    if capture.source == "file":
        return capture.source_name
    dataset = capture.source_name.replace("/", "-")
    return f"{capture.tier}-{capture.week}-{capture.venue_type}-{dataset}.jsonl"
