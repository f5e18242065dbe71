"""URL routes: admin, API, health."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dlq.api.urls import urlpatterns as dlq_api
from executions.api.urls import urlpatterns as executions_api
from spine_project import dashboard, health
from spine_project import metrics as metrics_views

urlpatterns = [
    # --- operations portal (issue 5) ---
    path("admin/dashboard/", admin.site.admin_view(dashboard.dashboard), name="dashboard"),
    path("api/v1/", include(([*executions_api, *dlq_api], "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # --- end operations portal ---
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics_views.metrics, name="metrics"),  # issue 6
    path("api/v1/", include("executions.api.schedules")),  # issue 6: /api/v1/schedules/
    path("api/v1/otc/", include("otc.api.urls")),
]

admin.site.site_header = "Market Spine operations"
admin.site.site_title = "Market Spine"

handler404 = "spine_project.errors.not_found"  # JSON under /api/, Django's page elsewhere
handler500 = "spine_project.errors.server_error"
