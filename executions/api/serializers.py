"""API representations of the ledger: executions, their events, pipelines and lanes."""

from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.models import TERMINAL_STATUSES, Execution, ExecutionEvent, Lane, LaneName


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


class ExecutionSummarySerializer(serializers.ModelSerializer):
    """One execution in the list: what a list needs to show and pick a row; the detail has all.

    Left out (read them from `GET /api/v1/executions/{id}/`): `params`, `result` and
    `error_traceback` (JSON and text up to 16,000 characters each: they made most of a page's
    bytes), and the dispatch and cancel bookkeeping (`request_id`, `idempotency_key`, `backend`,
    `backend_run_id`, `not_before`, `queued_at`, `deadline_at`, `cancel_requested_by`,
    `cancel_reason`).

    The declared fields document the schema; `to_representation` reads a row of
    `Execution.objects.values(*COLUMNS)` directly. Why by hand: DRF's per-field machinery cost
    about 4 ms of CPU for a page of 50 rows (`make bench`, issue 8), more than the rest of the
    request. A test holds every key and value equal to what the detail serializer gives.
    """

    created_by = serializers.CharField(read_only=True, allow_null=True, help_text="username")
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    is_terminal = serializers.BooleanField(read_only=True)

    COLUMNS = (
        "id",
        "pipeline",
        "lane",
        "status",
        "trigger_source",
        "created_by__username",
        "logical_key",
        "attempt",
        "max_attempts",
        "parent_id",
        "root_id",
        "created_at",
        "started_at",
        "finished_at",
        "cancel_requested_at",
        "error_type",
        "error_message",
    )

    class Meta:
        model = Execution
        fields = [
            "id",
            "pipeline",
            "lane",
            "status",
            "is_terminal",
            "trigger_source",
            "created_by",
            "logical_key",
            "attempt",
            "max_attempts",
            "parent",
            "root",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "cancel_requested_at",
            "error_type",
            "error_message",
        ]
        read_only_fields = fields

    def to_representation(self, row: dict) -> dict:
        started, finished = row["started_at"], row["finished_at"]
        return {
            "id": str(row["id"]),
            "pipeline": row["pipeline"],
            "lane": row["lane"],
            "status": row["status"],
            "is_terminal": row["status"] in TERMINAL_STATUSES,
            "trigger_source": row["trigger_source"],
            "created_by": row["created_by__username"],
            "logical_key": row["logical_key"],
            "attempt": row["attempt"],
            "max_attempts": row["max_attempts"],
            "parent": _str_or_none(row["parent_id"]),
            "root": _str_or_none(row["root_id"]),
            "created_at": _iso(row["created_at"]),
            "started_at": _iso(started),
            "finished_at": _iso(finished),
            "duration_seconds": (
                (finished - started).total_seconds() if started and finished else None
            ),
            "cancel_requested_at": _iso(row["cancel_requested_at"]),
            "error_type": row["error_type"],
            "error_message": row["error_message"],
        }


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    """A date-time as DRF's DateTimeField writes it in UTC: ISO 8601 with a `Z`."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


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
