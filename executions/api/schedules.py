"""`/api/v1/schedules/`: read for any authenticated user; writes need the model permissions.

One module (serializer, view set, routes) rather than spreading into the API's shared
`serializers.py`/`views.py`/`urls.py`: schedules are small and this keeps them self-contained.
"""

from django.urls import include, path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, serializers, viewsets
from rest_framework.routers import DefaultRouter

from executions import scheduler
from executions.api.pagination import CursorPagination
from executions.api.serializers import error_responses
from executions.models import Schedule


class SchedulePermissions(permissions.DjangoModelPermissions):
    """Reads for authenticated users; create, change and delete need `add/change/delete_schedule`.

    Operators get these permissions (SPEC §6: operators edit schedules; viewers read).
    """

    authenticated_users_only = True


class ScheduleSerializer(serializers.ModelSerializer):
    """A schedule; saving validates cron, time zone, pipeline and params, and computes next run."""

    last_execution = serializers.UUIDField(
        source="last_execution_id", read_only=True, allow_null=True
    )

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "pipeline",
            "params",
            "lane",
            "cron",
            "time_zone",
            "trading_days_only",
            "overlap_policy",
            "enabled",
            "description",
            "next_run_at",
            "last_run_at",
            "last_outcome",
            "last_execution",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "next_run_at",
            "last_run_at",
            "last_outcome",
            "created_at",
            "updated_at",
        ]

    def create(self, validated_data):
        return scheduler.save_schedule(Schedule(**validated_data))

    def update(self, instance, validated_data):
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return scheduler.save_schedule(instance)


class ScheduleCursor(CursorPagination):
    ordering = ("name", "id")


@extend_schema_view(
    list=extend_schema(
        responses={200: ScheduleSerializer(many=True), **error_responses(400)},
    ),
    retrieve=extend_schema(responses={200: ScheduleSerializer, **error_responses(404)}),
    create=extend_schema(responses={201: ScheduleSerializer, **error_responses(400)}),
    update=extend_schema(responses={200: ScheduleSerializer, **error_responses(400, 404)}),
    partial_update=extend_schema(responses={200: ScheduleSerializer, **error_responses(400, 404)}),
    destroy=extend_schema(responses={204: None, **error_responses(404)}),
)
class ScheduleViewSet(viewsets.ModelViewSet):
    """List, read, create, change and delete schedules."""

    pagination_class = ScheduleCursor
    queryset = Schedule.objects.all()
    serializer_class = ScheduleSerializer
    permission_classes = [SchedulePermissions]
    filterset_fields = ["enabled", "pipeline", "lane"]


router = DefaultRouter()
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = [path("", include(router.urls))]
