"""Read-only views of the OTC tables, as JSON or CSV (`?format=csv` or `Accept: text/csv`)."""

from django.db.models import Count, Max, Sum
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework_csv.renderers import PaginatedCSVRenderer

from executions.api.pagination import CursorPagination
from executions.api.permissions import ReadModelPermission
from executions.api.serializers import error_responses
from otc.api import filters, serializers
from otc.models import MetricsDaily, RejectedRow, Trade

RENDERERS = [JSONRenderer, BrowsableAPIRenderer, PaginatedCSVRenderer]


class _LinkHeader(BasePagination):
    """Also put the next page in a `Link` header, so a CSV client can follow it.

    Mixed in before a DRF pagination class, whose methods `super()` and `self` then reach.
    """

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        next_link = self.get_next_link()
        if next_link:
            response["Link"] = f'<{next_link}>; rel="next"'
        return response


class _ReadOnlyList(generics.ListAPIView):
    """A list as JSON or CSV; CSV columns keep the serializer's field order.

    Reading needs the view permission of the list's model (the viewer and operator roles).
    """

    renderer_classes = RENDERERS
    permission_classes = [ReadModelPermission]

    def get_renderer_context(self):
        context = super().get_renderer_context()
        context["header"] = list(self.get_serializer_class()().fields)
        return context


class NewestFirst(_LinkHeader, CursorPagination):
    """Cursor pages, newest rows first; `page_size` up to 1000."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class Pages(_LinkHeader, LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


@extend_schema_view(
    get=extend_schema(
        responses={200: serializers.WeekSerializer(many=True), **error_responses(400)}
    )
)
class WeekList(_ReadOnlyList):
    """Tier-weeks loaded, with row, symbol and volume counts."""

    serializer_class = serializers.WeekSerializer
    filterset_class = filters.WeeksFilter
    pagination_class = None
    queryset = Trade.objects.all()

    def list(self, request, *args, **kwargs):
        weeks = (
            self.filter_queryset(self.get_queryset())
            .values("tier", "week", "venue_type")
            .annotate(
                rows=Count("id"),
                symbols=Count("symbol", distinct=True),
                shares=Sum("shares"),
                trades=Sum("trades"),
                publication_date=Max("publication_date"),
            )
            .order_by("-week", "tier", "venue_type")
        )
        return Response(self.get_serializer(weeks, many=True).data)


@extend_schema_view(
    get=extend_schema(
        responses={200: serializers.TradeSerializer(many=True), **error_responses(400)}
    )
)
class TradeList(_ReadOnlyList):
    """Normalized venue-week rows (one per week, tier, symbol, venue and venue type)."""

    queryset = Trade.objects.all()
    serializer_class = serializers.TradeSerializer
    filterset_class = filters.TradeFilter
    pagination_class = NewestFirst


@extend_schema_view(
    get=extend_schema(
        responses={200: serializers.MetricsSerializer(many=True), **error_responses(400)}
    )
)
class MetricsList(_ReadOnlyList):
    """Per symbol, tier and week: totals, per-trading-day averages and venue concentration."""

    queryset = MetricsDaily.objects.all()
    serializer_class = serializers.MetricsSerializer
    filterset_class = filters.MetricsFilter
    pagination_class = NewestFirst


@extend_schema_view(
    get=extend_schema(
        responses={200: serializers.VenueShareSerializer(many=True), **error_responses(400)}
    )
)
class VenueShareList(_ReadOnlyList):
    """Each venue's volume per tier-week and its share of the tier-week's volume.

    With `symbol`, shares are of that symbol's volume; the `venue` filter narrows the rows but not
    the total they are a share of.
    """

    queryset = Trade.objects.all()
    serializer_class = serializers.VenueShareSerializer
    filterset_class = filters.TradeFilter
    pagination_class = Pages

    def list(self, request, *args, **kwargs):
        venues = (
            self.filter_queryset(self.get_queryset())
            .values("week", "tier", "venue_type", "venue_mpid")
            .annotate(
                venue_name=Max("venue_name"),
                shares=Sum("shares"),
                trades=Sum("trades"),
                symbols=Count("symbol"),
            )
            .order_by("-week", "tier", "-shares", "venue_mpid")
        )
        page = self.paginate_queryset(venues)
        rows = list(page if page is not None else venues)
        totals = self._totals({(r["week"], r["tier"]) for r in rows})
        for row in rows:
            total = totals.get((row["week"], row["tier"]))
            row["share_of_volume"] = row["shares"] / total if total else None
        data = self.get_serializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def _totals(self, keys):
        if not keys:
            return {}
        params = self.request.query_params.copy()
        params.pop("venue", None)
        scope = filters.TradeFilter(params, queryset=Trade.objects.all()).qs
        weeks = {week for week, _ in keys}
        return {
            (t["week"], t["tier"]): t["total"]
            for t in scope.filter(week__in=weeks)
            .values("week", "tier")
            .annotate(total=Sum("shares"))
        }


@extend_schema_view(
    get=extend_schema(
        responses={200: serializers.RejectedRowSerializer(many=True), **error_responses(400)}
    )
)
class RejectedRowList(_ReadOnlyList):
    """Source lines of the latest ingest of each tier-week that could not be loaded, and why."""

    queryset = RejectedRow.objects.all()
    serializer_class = serializers.RejectedRowSerializer
    filterset_class = filters.RejectedRowFilter
    pagination_class = NewestFirst
