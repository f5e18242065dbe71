"""Dead letters: executions parked for an operator after their retries ran out."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from executions.models import Execution


class Resolution(models.TextChoices):
    REPLAYED = "replayed"
    IGNORED = "ignored"
    FIXED_MANUALLY = "fixed_manually"


class DeadLetter(models.Model):
    """One dead-lettered execution and how an operator resolved it."""

    execution = models.OneToOneField(
        Execution, on_delete=models.CASCADE, related_name="dead_letter"
    )
    pipeline = models.CharField(max_length=200)
    reason = models.CharField(max_length=40, help_text="max_attempts, deadline_missed, worker_lost")
    error_summary = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True, default="")
    note = models.TextField(blank=True, default="")
    replay_execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="replay_of"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["resolved_at", "created_at"], name="dlq_unresolved"),
            models.Index(fields=["pipeline", "created_at"], name="dlq_pipeline"),
        ]
        permissions = [
            ("replay_deadletter", "Can replay a dead letter"),
            ("resolve_deadletter", "Can resolve a dead letter"),
        ]

    def __str__(self) -> str:
        state = self.resolution or "unresolved"
        return f"{self.pipeline} {self.execution_id} ({self.reason}, {state})"

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None
