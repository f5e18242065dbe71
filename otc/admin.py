"""Read-only admin pages for the OTC tables: only the ingest pipelines write them."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from otc.connectors.circuit import circuit_state, known_sources
from otc.models import MetricsDaily, RawCapture, RawTrade, RejectedRow, Trade


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
    list_display = (
        "captured_at",
        "tier",
        "week",
        "venue_type",
        "source",
        "source_name",
        "line_count",
        "lines_link",
        "execution_id",
    )
    list_filter = ("tier", "venue_type", "source", "week")
    search_fields = ("=source_name", "=execution_id", "=content_hash")

    @admin.display(description="lines")
    def lines_link(self, capture):
        url = reverse("admin:otc_rawtrade_changelist") + f"?capture__exact={capture.pk}"
        return format_html('<a href="{}">view lines</a>', url)


@admin.register(RawTrade)
class RawTradeAdmin(ReadOnlyAdmin):
    """Lines as received, in capture and line order; opened from a capture ("view lines").

    No filters or search here: over millions of lines each would scan them all. A capture's
    lines come from its index on `capture_id`.
    """

    list_display = ("capture_id", "line_number", "raw_line")
    ordering = ("capture_id", "line_number")
