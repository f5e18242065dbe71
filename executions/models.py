"""The executions ledger: every run of a pipeline, its events, and the lanes it runs in.

Status changes never go through `save()`: `executions.transitions` applies them as
compare-and-set updates, and `executions.dispatcher` is the only creator of executions.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (Status.PENDING, Status.QUEUED, Status.RUNNING)
TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.DEAD_LETTERED, Status.CANCELLED)


class LaneName(models.TextChoices):
    NORMAL = "normal"
    BACKFILL = "backfill"


class TriggerSource(models.TextChoices):
    API = "api"
    ADMIN = "admin"
    CLI = "cli"
    SCHEDULE = "schedule"
    RETRY = "retry"
    REPLAY = "replay"
    SYSTEM = "system"


class Execution(models.Model):
    """One run of a pipeline, from submission to a terminal status."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    lane = models.CharField(max_length=32, choices=LaneName.choices, default=LaneName.NORMAL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    trigger_source = models.CharField(max_length=20, choices=TriggerSource.choices)
    # Foreign keys that are mostly NULL have partial indexes (Meta) instead of Django's full ones.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    request_id = models.CharField(max_length=128, blank=True, default="")
    logical_key = models.CharField(max_length=400, null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # unique: Meta

    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        db_index=False,
    )
    root = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="descendants",
        db_index=False,
    )

    backend = models.CharField(max_length=50, blank=True, default="")
    backend_run_id = models.CharField(max_length=200, blank=True, default="")
    not_before = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=200, blank=True, default="")

    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    cancel_reason = models.TextField(blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=200, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One active execution per logical key: the dispatcher relies on this index, not on a
            # read-then-write, to settle concurrent submissions (SPEC §4.3).
            models.UniqueConstraint(
                fields=["logical_key"],
                condition=Q(status__in=["pending", "queued", "running"])
                & Q(logical_key__isnull=False),
                name="uniq_active_logical_key",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="uniq_idempotency_key",
            ),
        ]
        # Every status change writes a new row version into every index whose predicate the row
        # meets (no HOT update: status is indexed), so an index that only some rows need is
        # partial. A fresh execution's submit, claim and finish touch 5 or 6 indexes, not 15
        # (README "Performance").
        indexes = [
            # The list's filters, newest first (issue 8, EXPLAIN on 1M rows): without them a rare
            # status or lane + status walked every row of exec_created (300 ms), a trigger
            # source scanned the table (80 ms). (status, lane) counts still use the first.
            models.Index(fields=["status", "lane", "created_at"], name="exec_status_lane_created"),
            models.Index(fields=["status", "created_at"], name="exec_status_created"),
            models.Index(fields=["trigger_source", "created_at"], name="exec_trigger_created"),
            models.Index(
                fields=["status", "not_before"],
                name="exec_waiting_due",
                condition=Q(status__in=["pending", "queued"]),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="exec_running_lease",
                condition=Q(status="running"),
            ),
            models.Index(fields=["created_at", "id"], name="exec_created"),
            models.Index(fields=["pipeline", "created_at"], name="exec_pipeline_created"),
            models.Index(
                fields=["logical_key", "created_at"],
                name="exec_key_created",
                condition=Q(logical_key__isnull=False),
            ),
            models.Index(
                fields=["finished_at"], name="exec_finished", condition=Q(finished_at__isnull=False)
            ),
            *(
                models.Index(
                    fields=[fk], name=f"exec_{fk}", condition=Q(**{f"{fk}__isnull": False})
                )
                for fk in ("created_by", "cancel_requested_by", "parent", "root")
            ),
        ]
        permissions = [
            ("retry_execution", "Can retry an execution"),
            ("cancel_execution", "Can cancel an execution"),
            ("submit_execution", "Can submit an execution"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ExecutionEvent(models.Model):
    """One state change or operator action on an execution: the audit trail."""

    execution = models.ForeignKey(
        Execution,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # event_exec_at (execution, at) serves every lookup by execution
    )
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20, blank=True, default="")
    actor = models.CharField(max_length=150, help_text="username, or the system component")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    source = models.CharField(max_length=20, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["execution", "at"], name="event_exec_at"),
            models.Index(fields=["at"], name="event_at"),
            models.Index(
                fields=["actor_user"],
                name="event_actor_user",
                condition=Q(actor_user__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        arrow = f" {self.from_status}→{self.to_status}" if self.to_status else ""
        return f"{self.kind}{arrow} by {self.actor}"


class Lane(models.Model):
    """A lane's operational state: a paused lane accepts work as `pending` and submits none."""

    name = models.CharField(max_length=32, primary_key=True, choices=LaneName.choices)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]
        permissions = [("pause_lane", "Can pause and resume a lane")]

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'running'})"


# --- Operations jobs: schedules and retention (issue 6) ------------------------------------------


class OverlapPolicy(models.TextChoices):
    SKIP = "skip", "skip a run while the previous one is still active"
    ALLOW = "allow", "run even if the previous one is still active"


class Schedule(models.Model):
    """A pipeline run on a cron expression, dispatched by `spine_scheduler`."""

    name = models.CharField(max_length=200, unique=True)
    pipeline = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    lane = models.CharField(
        max_length=32,
        choices=LaneName.choices,
        blank=True,
        default="",
        help_text="blank: the pipeline's lane",
    )
    cron = models.CharField(
        max_length=120, help_text="five-field cron expression, e.g. 0 18 * * 1-5"
    )
    time_zone = models.CharField(
        max_length=64, default="UTC", help_text="IANA name, e.g. America/New_York"
    )
    trading_days_only = models.BooleanField(
        default=False, help_text="fire only on NYSE trading days (weekdays that are not holidays)"
    )
    overlap_policy = models.CharField(
        max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="")

    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_outcome = models.CharField(max_length=40, blank=True, default="", editable=False)
    last_execution = models.ForeignKey(
        Execution,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron} {self.time_zone})"


class CleanupStat(models.Model):
    """Running totals of `spine_cleanup` per kind, exported as metrics at scrape time.

    Kept in the database because the cleanup runs as a short-lived job (a CronJob) whose own
    in-process counters would vanish before any scrape.
    """

    kind = models.CharField(max_length=64, primary_key=True)
    deleted_total = models.BigIntegerField(default=0)
    last_deleted = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_duration_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.deleted_total} deleted"
