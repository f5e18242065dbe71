"""URL routes: admin, API, health."""

from django.contrib import admin
from django.urls import include, path

from spine_project import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("api/v1/otc/", include("otc.api.urls")),
]
