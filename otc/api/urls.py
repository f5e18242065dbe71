"""Routes of the OTC API, mounted at /api/v1/otc/."""

from django.urls import path

from otc.api import views

urlpatterns = [
    path("weeks/", views.WeekList.as_view(), name="otc-weeks"),
    path("trades/", views.TradeList.as_view(), name="otc-trades"),
    path("metrics/", views.MetricsList.as_view(), name="otc-metrics"),
    path("venue-shares/", views.VenueShareList.as_view(), name="otc-venue-shares"),
    path("rejects/", views.RejectedRowList.as_view(), name="otc-rejects"),
]
