"""Serializers of the OTC API."""

from rest_framework import serializers

from otc.models import MetricsDaily, RejectedRow, Trade


class WeekSerializer(serializers.Serializer):
    """A loaded tier-week and venue type."""

    tier = serializers.CharField()
    week = serializers.DateField()
    venue_type = serializers.CharField()
    rows = serializers.IntegerField()
    symbols = serializers.IntegerField()
    shares = serializers.IntegerField()
    trades = serializers.IntegerField()
    publication_date = serializers.DateField(allow_null=True)


class TradeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Trade
        fields = [
            "id",
            "week",
            "tier",
            "symbol",
            "issue_name",
            "venue_mpid",
            "venue_name",
            "venue_type",
            "shares",
            "trades",
            "publication_date",
        ]


class MetricsSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricsDaily
        fields = [
            "id",
            "week",
            "tier",
            "symbol",
            "total_shares",
            "total_trades",
            "trading_days",
            "avg_daily_shares",
            "avg_daily_trades",
            "avg_trade_size",
            "venue_count",
            "top_venue_mpid",
            "top_venue_name",
            "top_venue_share",
            "hhi",
            "ats_shares",
            "ats_share",
            "wow_change",
        ]


class VenueShareSerializer(serializers.Serializer):
    """One venue's volume in a tier-week, and its share of the tier-week's volume."""

    week = serializers.DateField()
    tier = serializers.CharField()
    venue_type = serializers.CharField()
    venue_mpid = serializers.CharField()
    venue_name = serializers.CharField()
    shares = serializers.IntegerField()
    trades = serializers.IntegerField()
    symbols = serializers.IntegerField()
    share_of_volume = serializers.FloatField(allow_null=True)


class RejectedRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = RejectedRow
        fields = [
            "id",
            "tier",
            "week",
            "venue_type",
            "source",
            "source_name",
            "line_number",
            "reason",
            "detail",
            "raw_line",
            "execution_id",
        ]
