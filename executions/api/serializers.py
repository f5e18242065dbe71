"""API representations of the ledger: executions, their events, pipelines and lanes."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.models import Execution, ExecutionEvent, Lane, LaneName


class ErrorSerializer(serializers.Serializer):
    """Every API error: `{code, message, details}`."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField()


class ExecutionSerializer(serializers.ModelSerializer):
    """One execution as the API shows it."""

    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    cancel_requested_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    is_terminal = serializers.BooleanField(read_only=True)

    class Meta:
        model = Execution
        fields = [
            "id",
            "pipeline",
            "params",
            "lane",
            "status",
            "is_terminal",
            "trigger_source",
            "created_by",
            "request_id",
            "logical_key",
            "idempotency_key",
            "attempt",
            "max_attempts",
            "parent",
            "root",
            "backend",
            "backend_run_id",
            "not_before",
            "queued_at",
            "deadline_at",
            "cancel_requested_at",
            "cancel_requested_by",
            "cancel_reason",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "result",
            "error_type",
            "error_message",
            "error_traceback",
        ]
        read_only_fields = fields


class SubmitSerializer(serializers.Serializer):
    """The body of a submission; params are validated by the pipeline's own schema."""

    pipeline = serializers.CharField(max_length=200)
    params = serializers.DictField(required=False, default=dict)
    lane = serializers.ChoiceField(choices=LaneName.choices, required=False)


class ReasonSerializer(serializers.Serializer):
    """The body of an operator action: why (recorded in the audit trail)."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class EventSerializer(serializers.ModelSerializer):
    """One audit event of an execution."""

    class Meta:
        model = ExecutionEvent
        fields = [
            "id",
            "at",
            "kind",
            "from_status",
            "to_status",
            "actor",
            "source",
            "reason",
            "request_id",
            "data",
        ]
        read_only_fields = fields


class RetryPolicySerializer(serializers.Serializer):
    max_attempts = serializers.IntegerField()
    backoff_base_seconds = serializers.FloatField()
    backoff_max_seconds = serializers.FloatField()
    jitter = serializers.FloatField()


class PipelineSerializer(serializers.Serializer):
    """A registered pipeline (read from the registry, not the database)."""

    name = serializers.CharField()
    description = serializers.CharField()
    lane = serializers.CharField()
    timeout_seconds = serializers.FloatField()
    retry = RetryPolicySerializer()
    logical_key = serializers.CharField(allow_null=True)
    on_key_collision = serializers.CharField()
    params_schema = serializers.SerializerMethodField()

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_params_schema(self, spec) -> dict:
        return spec.params_schema()


class LaneSerializer(serializers.ModelSerializer):
    """A lane and whether it is paused."""

    changed_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Lane
        fields = ["name", "paused", "changed_at", "changed_by", "reason"]
        read_only_fields = fields


def error_responses(*statuses: int) -> dict:
    """Schema entries for the error statuses an endpoint may answer, plus the common ones."""
    from drf_spectacular.utils import OpenApiResponse

    common = (401, 403, 429)  # not signed in, role lacks the permission, rate limited
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERROR_MEANING[status])
        for status in sorted({*statuses, *common})
    }


_ERROR_MEANING = {
    400: "Invalid request: `details` names the fields.",
    401: "Not authenticated.",
    403: "Authenticated, but the role lacks the permission.",
    404: "No such resource.",
    409: "Conflict with the resource's current state (a refused transition, a busy key, a reused "
    "Idempotency-Key).",
    429: "Rate limited or backpressure (lane_full, global_full): see `Retry-After`.",
}
