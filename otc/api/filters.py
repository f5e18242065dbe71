"""Query filters of the OTC API: symbol, tier, week range, venue (django-filter)."""

from django_filters import rest_framework as filters

from otc.models import MetricsDaily, RejectedRow, RejectReason, Tier, Trade, VenueType


class _Upper(filters.CharFilter):
    """Exact match on an upper-cased value (FINRA symbols and MPIDs are upper case)."""

    def filter(self, qs, value):
        return super().filter(qs, value.strip().upper() if value else value)


class WeekRangeFilter(filters.FilterSet):
    """Tier, one week, or a range of weeks (Mondays, inclusive)."""

    tier = filters.ChoiceFilter(choices=Tier.choices)
    week = filters.DateFilter()
    week_from = filters.DateFilter(field_name="week", lookup_expr="gte")
    week_to = filters.DateFilter(field_name="week", lookup_expr="lte")


class TradeFilter(WeekRangeFilter):
    symbol = _Upper(field_name="symbol")
    venue = _Upper(field_name="venue_mpid", label="Venue MPID")
    venue_type = filters.ChoiceFilter(choices=VenueType.choices)

    class Meta:
        model = Trade
        fields = ["symbol", "tier", "week", "week_from", "week_to", "venue", "venue_type"]


class WeeksFilter(WeekRangeFilter):
    venue_type = filters.ChoiceFilter(choices=VenueType.choices)

    class Meta:
        model = Trade
        fields = ["tier", "week", "week_from", "week_to", "venue_type"]


class MetricsFilter(WeekRangeFilter):
    symbol = _Upper(field_name="symbol")
    venue = _Upper(field_name="top_venue_mpid", label="Top venue MPID")

    class Meta:
        model = MetricsDaily
        fields = ["symbol", "tier", "week", "week_from", "week_to", "venue"]


class RejectedRowFilter(WeekRangeFilter):
    venue_type = filters.ChoiceFilter(choices=VenueType.choices)
    reason = filters.ChoiceFilter(choices=RejectReason.choices)

    class Meta:
        model = RejectedRow
        fields = ["tier", "week", "week_from", "week_to", "venue_type", "reason"]
