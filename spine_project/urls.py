"""URL routes: admin, API, health."""

from django.contrib import admin
from django.urls import include, path

from spine_project import health
from spine_project import metrics as metrics_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics_views.metrics, name="metrics"),  # issue 6
    path("api/v1/", include("executions.api.schedules")),  # issue 6: /api/v1/schedules/
]
