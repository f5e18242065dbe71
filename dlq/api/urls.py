"""Routes of the dead-letter API, included under `/api/v1/` by the project's URLs."""

from rest_framework.routers import SimpleRouter

from dlq.api import views

router = SimpleRouter()
router.register("dead-letters", views.DeadLetterViewSet, basename="deadletter")

urlpatterns = router.urls
