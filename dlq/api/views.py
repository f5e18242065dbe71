"""Dead-letter endpoints: list, detail, replay, resolve (each calls one `dlq.services` function)."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from dlq import services
from dlq.api.filters import DeadLetterFilter
from dlq.api.serializers import DeadLetterSerializer, ReplaySerializer, ResolveSerializer
from dlq.models import DeadLetter
from executions.api.pagination import CursorPagination
from executions.api.permissions import ActionPermission
from executions.api.serializers import error_responses
from executions.api.views import api_actor


class NewestFirst(CursorPagination):
    ordering = "-created_at"


@extend_schema(tags=["dead letters"])
class DeadLetterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Executions parked after their retries ran out; an operator replays or resolves them."""

    queryset = DeadLetter.objects.select_related("resolved_by")
    serializer_class = DeadLetterSerializer
    filterset_class = DeadLetterFilter
    pagination_class = NewestFirst
    permission_classes = [ActionPermission]
    lookup_value_regex = "[0-9]+"
    action_permissions = {
        "list": "dlq.view_deadletter",
        "retrieve": "dlq.view_deadletter",
        "metadata": "dlq.view_deadletter",
        "replay": "dlq.replay_deadletter",
        "resolve": "dlq.resolve_deadletter",
    }

    @extend_schema(
        summary="List dead letters, newest first (cursor pagination)",
        responses={200: DeadLetterSerializer(many=True), **error_responses(400)},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One dead letter", responses={200: DeadLetterSerializer, **error_responses(404)}
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Replay: dispatch the execution again and resolve the letter as replayed",
        request=ReplaySerializer,
        responses={202: DeadLetterSerializer, **error_responses(400, 404, 409)},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def replay(self, request, pk=None):
        body = ReplaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = body.validated_data["note"]
        letter = services.replay(pk, actor=api_actor(request, note), note=note)
        return Response(DeadLetterSerializer(letter).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Resolve without replaying (ignored or fixed_manually); a note is required",
        request=ResolveSerializer,
        responses={200: DeadLetterSerializer, **error_responses(400, 404, 409)},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def resolve(self, request, pk=None):
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = body.validated_data["note"]
        letter = services.resolve(
            pk,
            resolution=body.validated_data["resolution"],
            note=note,
            actor=api_actor(request, note),
        )
        return Response(DeadLetterSerializer(letter).data)
