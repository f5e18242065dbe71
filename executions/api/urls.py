"""Routes of the ledger API, included under `/api/v1/` by the project's URLs."""

from rest_framework.routers import SimpleRouter

from executions.api import views

router = SimpleRouter()
router.register("executions", views.ExecutionViewSet, basename="execution")
router.register("pipelines", views.PipelineViewSet, basename="pipeline")
router.register("lanes", views.LaneViewSet, basename="lane")

urlpatterns = router.urls
