"""Ledger endpoints: executions (submit, list, detail, events, cancel, retry), pipelines, lanes.

Each view parses the request, calls one service, and serializes the answer (STYLE §5).
"""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from executions import dispatcher, services
from executions.api.filters import ExecutionFilter, FilterBackend
from executions.api.pagination import CursorPagination
from executions.api.permissions import ActionPermission
from executions.api.serializers import (
    EventSerializer,
    ExecutionSerializer,
    ExecutionSummarySerializer,
    LaneSerializer,
    PipelineSerializer,
    ReasonSerializer,
    SubmitSerializer,
    error_responses,
)
from executions.errors import DomainError, PipelineNotFound
from executions.models import Execution, ExecutionEvent, Lane, Status, TriggerSource
from executions.registry import registry
from executions.transitions import Actor

IDEMPOTENCY_HEADER = "Idempotency-Key"


def api_actor(request, reason: str = "") -> Actor:
    """The audit actor of an API call: the user, the request id and the reason given."""
    return Actor.for_user(
        request.user, source="api", request_id=getattr(request, "request_id", ""), reason=reason
    )


class NewestFirst(CursorPagination):
    ordering = "-created_at"


class OldestFirst(CursorPagination):
    ordering = ("at", "id")


@extend_schema(tags=["executions"])
class ExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Pipeline executions: submit, list, inspect, cancel, retry."""

    queryset = Execution.objects.select_related("created_by", "cancel_requested_by")
    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilter
    filter_backends = [FilterBackend]
    pagination_class = NewestFirst
    permission_classes = [ActionPermission]
    # a UUID, with or without dashes: anything else is a 404 before any view code runs
    lookup_value_regex = "[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}"
    action_permissions = {
        "list": "executions.view_execution",
        "retrieve": "executions.view_execution",
        "events": "executions.view_execution",
        "metadata": "executions.view_execution",
        "create": "executions.submit_execution",
        "cancel": "executions.cancel_execution",
        "retry": "executions.retry_execution",
    }

    def get_queryset(self):
        if self.action == "list":  # plain rows, one query with the creator's username joined
            return Execution.objects.values(*ExecutionSummarySerializer.COLUMNS)
        return super().get_queryset()

    def get_serializer_class(self):
        return ExecutionSummarySerializer if self.action == "list" else ExecutionSerializer

    @extend_schema(
        summary="List executions, newest first (cursor pagination)",
        description=(
            "Each item is a summary: `params`, `result`, `error_traceback` and the dispatch and "
            "cancel bookkeeping are in the detail (`GET /api/v1/executions/{id}/`) only."
        ),
        responses={200: ExecutionSummarySerializer(many=True), **error_responses(400)},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One execution",
        responses={200: ExecutionSerializer, **error_responses(404)},
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Submit a pipeline execution",
        description=(
            "Accepted executions answer 202. Send an `Idempotency-Key` header to make a retry of "
            "the same request safe: the same key and payload return the same execution "
            "(`Idempotent-Replayed: true`), a different payload under the key answers 409."
        ),
        request=SubmitSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Client-chosen key (at most 200 characters) that deduplicates retries.",
            )
        ],
        responses={202: ExecutionSerializer, **error_responses(400, 409)},
    )
    def create(self, request):
        body = SubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if len(key) > 200:
            raise DomainError(
                "Idempotency-Key is longer than 200 characters.",
                details={IDEMPOTENCY_HEADER: ["At most 200 characters."]},
                code="invalid_idempotency_key",
            )
        result = dispatcher.dispatch(
            body.validated_data["pipeline"],
            body.validated_data["params"],
            lane=body.validated_data.get("lane"),
            trigger_source=TriggerSource.API,
            created_by=request.user,
            request_id=getattr(request, "request_id", None),
            idempotency_key=key or None,
        )
        return self._accepted(result.execution, replayed=not result.created)

    @extend_schema(
        summary="The execution's audit trail, oldest first",
        responses={200: EventSerializer(many=True), **error_responses(404)},
    )
    @action(detail=True, methods=["get"], pagination_class=OldestFirst, filter_backends=[])
    def events(self, request, pk=None):
        execution = self.get_object()
        page = self.paginate_queryset(ExecutionEvent.objects.filter(execution=execution))
        return self.get_paginated_response(EventSerializer(page, many=True).data)

    @extend_schema(
        summary="Cancel an execution",
        description=(
            "A pending or queued execution is cancelled at once (200). A running one is asked to "
            "stop and is cancelled by its runner within seconds (202, status still `running`)."
        ),
        request=ReasonSerializer,
        responses={
            200: ExecutionSerializer,
            202: OpenApiResponse(ExecutionSerializer, description="Cancel requested."),
            **error_responses(400, 404, 409),
        },
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request, pk=None):
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        execution = services.cancel(pk, actor=api_actor(request, body.validated_data["reason"]))
        code = (
            status.HTTP_202_ACCEPTED if execution.status == Status.RUNNING else status.HTTP_200_OK
        )
        return Response(ExecutionSerializer(execution).data, status=code)

    @extend_schema(
        summary="Retry a finished execution as a new one (its parent is this one)",
        request=ReasonSerializer,
        responses={202: ExecutionSerializer, **error_responses(400, 404, 409)},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def retry(self, request, pk=None):
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.retry(
            pk,
            actor=api_actor(request, body.validated_data["reason"]),
        )
        return self._accepted(result.execution, replayed=False)

    def _accepted(self, execution: Execution, *, replayed: bool) -> Response:
        execution.refresh_from_db()  # the after-commit submit may have queued it meanwhile
        response = Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = reverse("api:execution-detail", args=[execution.id])
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response


@extend_schema(tags=["pipelines"])
class PipelineViewSet(viewsets.GenericViewSet):
    """Registered pipelines: names, params schema, lane, timeout and retry policy."""

    serializer_class = PipelineSerializer
    pagination_class = None
    filter_backends: list = []
    permission_classes = [ActionPermission]
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9_.]+"
    action_permissions = {
        "list": "executions.view_execution",
        "retrieve": "executions.view_execution",
        "metadata": "executions.view_execution",
    }

    @extend_schema(
        summary="All pipelines", responses={200: PipelineSerializer(many=True), **error_responses()}
    )
    def list(self, request):
        return Response(PipelineSerializer(registry.all(), many=True).data)

    @extend_schema(
        summary="One pipeline",
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH)],
        responses={200: PipelineSerializer, **error_responses(404)},
    )
    def retrieve(self, request, name=None):
        try:
            spec = registry.get(name)
        except PipelineNotFound as exc:
            raise NotFound(exc.message) from None
        return Response(PipelineSerializer(spec).data)


@extend_schema(tags=["lanes"])
class LaneViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Lanes: a paused lane accepts submissions as `pending` and runs nothing until resumed."""

    queryset = Lane.objects.select_related("changed_by")
    serializer_class = LaneSerializer
    pagination_class = None
    filter_backends: list = []
    permission_classes = [ActionPermission]
    lookup_field = "name"
    lookup_value_regex = "[a-z_]+"
    action_permissions = {
        "list": "executions.view_lane",
        "retrieve": "executions.view_lane",
        "metadata": "executions.view_lane",
        "pause": "executions.pause_lane",
        "resume": "executions.pause_lane",
    }

    @extend_schema(
        summary="All lanes", responses={200: LaneSerializer(many=True), **error_responses()}
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="One lane", responses={200: LaneSerializer, **error_responses(404)})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Pause a lane",
        request=ReasonSerializer,
        responses={200: LaneSerializer, **error_responses(400, 404)},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, name=None):
        return self._set_paused(request, True)

    @extend_schema(
        summary="Resume a lane (submits its held executions)",
        request=ReasonSerializer,
        responses={200: LaneSerializer, **error_responses(400, 404)},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, name=None):
        return self._set_paused(request, False)

    def _set_paused(self, request, paused: bool) -> Response:
        lane = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = api_actor(request, body.validated_data["reason"])
        return Response(
            LaneSerializer(services.set_lane_paused(lane.name, paused, actor=actor)).data
        )
