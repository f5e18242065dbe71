"""API representations of dead letters and the bodies of replay and resolve."""

from rest_framework import serializers

from dlq.models import DeadLetter, Resolution


class DeadLetterSerializer(serializers.ModelSerializer):
    """One dead letter and its resolution."""

    resolved_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    is_resolved = serializers.BooleanField(read_only=True)
    resolution = serializers.ChoiceField(
        choices=Resolution.choices, allow_blank=True, read_only=True, help_text="blank: unresolved"
    )

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "execution",
            "pipeline",
            "reason",
            "error_summary",
            "attempts",
            "created_at",
            "is_resolved",
            "resolved_at",
            "resolved_by",
            "resolution",
            "note",
            "replay_execution",
        ]
        read_only_fields = fields


class ReplaySerializer(serializers.Serializer):
    """Replay: an optional note, kept on the dead letter and in the audit trail."""

    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class ResolveSerializer(serializers.Serializer):
    """Resolve without replaying: how, and a required note saying why."""

    resolution = serializers.ChoiceField(
        choices=[Resolution.IGNORED, Resolution.FIXED_MANUALLY], default=Resolution.IGNORED
    )
    # Blank is let through so that the service refuses it with its own `note_required` error.
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
