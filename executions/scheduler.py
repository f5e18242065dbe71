"""The scheduler: fires `Schedule` rows on their cron expressions through the dispatcher.

One scheduler is active at a time: on PostgreSQL the active one holds a session advisory lock and
the others wait as standbys; on SQLite a single scheduler process is assumed. Even so, each fire
is claimed with a compare-and-set on `next_run_at` and dispatched with an idempotency key made of
the schedule and its fire time, so two schedulers can never fire the same run twice.

Missed fires (the scheduler was down) are coalesced: one run, then the next time after now.
"""

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from croniter import croniter
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from executions import dispatcher
from executions.calendar import is_trading_day
from executions.errors import DomainError, InvalidSchedule, KeyBusy
from executions.models import (
    ACTIVE_STATUSES,
    Execution,
    LaneName,
    OverlapPolicy,
    Schedule,
    TriggerSource,
)
from executions.registry import registry

log = structlog.get_logger(__name__)

ADVISORY_LOCK_KEY = 7_305_119_427_733_362_001  # "one active spine_scheduler" (any fixed bigint)
_MAX_SKIPPED_DAYS = 1000  # cron matches skipped for holidays before giving up


@dataclass(frozen=True)
class Fire:
    """One claimed fire of a schedule and what came of it."""

    schedule: str
    fire_at: datetime
    outcome: str
    execution_id: str | None = None


def validate(schedule: Schedule) -> None:
    """Raise `InvalidSchedule` naming every bad field."""
    errors: dict[str, list[str]] = {}
    if not croniter.is_valid(schedule.cron or "") or len((schedule.cron or "").split()) != 5:
        errors["cron"] = ["Not a valid five-field cron expression."]
    try:
        ZoneInfo(schedule.time_zone or "")
    except (ZoneInfoNotFoundError, ValueError):
        errors["time_zone"] = [f"Unknown time zone {schedule.time_zone!r}."]
    if schedule.lane and schedule.lane not in LaneName.values:
        errors["lane"] = [f"Must be one of {LaneName.values}."]
    try:
        spec = registry.get(schedule.pipeline)
    except DomainError as exc:
        errors["pipeline"] = [exc.message]
    else:
        try:
            spec.validate(schedule.params)
        except DomainError as exc:
            errors["params"] = [f"{field}: {'; '.join(m)}" for field, m in exc.details.items()]
    if errors:
        raise InvalidSchedule(f"Invalid schedule: {', '.join(sorted(errors))}.", details=errors)


def next_run_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The first cron match strictly after `after` (skipping non-trading days if asked), in UTC."""
    tz = ZoneInfo(schedule.time_zone)
    matches = croniter(schedule.cron, after.astimezone(tz))
    for _ in range(_MAX_SKIPPED_DAYS):
        candidate = matches.get_next(datetime)
        if not schedule.trading_days_only or is_trading_day(candidate.astimezone(tz).date()):
            return candidate.astimezone(UTC)
    return None


def save_schedule(schedule: Schedule, *, now: datetime | None = None) -> Schedule:
    """Validate and save a schedule (admin and API call this), recomputing its next run."""
    validate(schedule)
    now = now or timezone.now()
    schedule.next_run_at = next_run_after(schedule, now) if schedule.enabled else None
    schedule.updated_at = now
    schedule.save()
    return schedule


class Scheduler:
    """Fires due schedules; `run()` loops, `tick()` fires what is due once."""

    def __init__(self, *, clock: Callable[[], datetime] = timezone.now, name: str = "") -> None:
        self.clock = clock
        self.name = name or f"scheduler-{uuid.uuid4().hex[:8]}"
        self.is_leader = False

    # --- leadership -------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Become the active scheduler if no other holds the lock (always, on SQLite)."""
        if connection.vendor != "postgresql":
            self.is_leader = True
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            self.is_leader = bool(cursor.fetchone()[0])
        return self.is_leader

    def holds_lock(self) -> bool:
        """Whether this scheduler's session still holds the lock (a dropped connection loses it)."""
        if connection.vendor != "postgresql":
            return self.is_leader
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND objid = (%s::bigint & 4294967295)::oid",
                    [ADVISORY_LOCK_KEY],
                )
                held = cursor.fetchone() is not None
        except Exception:
            connection.close()
            held = False
        self.is_leader = held
        return held

    def release(self) -> None:
        if self.is_leader and connection.vendor == "postgresql":
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
            except Exception:
                connection.close()  # closing the session releases the lock too
        self.is_leader = False

    # --- firing -----------------------------------------------------------------------------

    def run(
        self,
        *,
        interval: float | None = None,
        stop: threading.Event | None = None,
        max_ticks: int | None = None,
    ) -> None:
        """Tick every `interval` seconds while leader; wait as a standby otherwise."""
        interval = settings.SPINE_SCHEDULER_INTERVAL_SECONDS if interval is None else interval
        stop = stop or threading.Event()
        ticks = 0
        try:
            while not stop.is_set():
                if (self.is_leader and self.holds_lock()) or self.acquire():
                    self.tick()
                else:
                    log.info("scheduler.standby", scheduler=self.name)
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    return
                stop.wait(interval)
        finally:
            self.release()

    def tick(self) -> list[Fire]:
        """Fire every enabled schedule whose next run is due; give new ones their next run."""
        now = self.clock()
        for schedule in Schedule.objects.filter(enabled=True, next_run_at__isnull=True):
            Schedule.objects.filter(pk=schedule.pk, next_run_at__isnull=True).update(
                next_run_at=next_run_after(schedule, now)
            )
        fires = []
        due = Schedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
        for schedule in due:
            fire = self._fire(schedule, now)
            if fire is not None:
                fires.append(fire)
        return fires

    def _fire(self, schedule: Schedule, now: datetime) -> Fire | None:
        fire_at = schedule.next_run_at
        if fire_at is None:  # not due: the due query selects next_run_at <= now
            return None
        following = next_run_after(schedule, now)
        with transaction.atomic():
            claimed = Schedule.objects.filter(
                pk=schedule.pk, enabled=True, next_run_at=fire_at
            ).update(next_run_at=following, last_run_at=now)
            if not claimed:
                return None  # another scheduler fired it, or it was edited meanwhile
            outcome, execution_id = self._dispatch(schedule, fire_at)
            fields = {"last_outcome": outcome}
            if execution_id:
                fields["last_execution_id"] = execution_id
            Schedule.objects.filter(pk=schedule.pk).update(**fields)
        log.info(
            "schedule.fired",
            schedule=schedule.name,
            fire_at=fire_at.isoformat(),
            outcome=outcome,
            execution_id=execution_id,
            scheduler=self.name,
        )
        return Fire(schedule.name, fire_at, outcome, execution_id)

    def _dispatch(self, schedule: Schedule, fire_at: datetime) -> tuple[str, str | None]:
        tz = ZoneInfo(schedule.time_zone)
        if schedule.trading_days_only and not is_trading_day(fire_at.astimezone(tz).date()):
            return "skipped_holiday", None
        if (
            schedule.overlap_policy == OverlapPolicy.SKIP
            and schedule.last_execution_id
            and Execution.objects.filter(
                pk=schedule.last_execution_id, status__in=ACTIVE_STATUSES
            ).exists()
        ):
            return "skipped_overlap", None
        try:
            with transaction.atomic():
                result = dispatcher.dispatch(
                    schedule.pipeline,
                    schedule.params,
                    trigger_source=TriggerSource.SCHEDULE,
                    lane=schedule.lane or None,
                    request_id=f"schedule-{uuid.uuid4().hex}",
                    idempotency_key=f"schedule:{schedule.pk}:{fire_at.astimezone(UTC):%Y%m%dT%H%M%SZ}",
                )
        except KeyBusy:
            # the pipeline's logical key is busy: the same work is already running
            return "skipped_key_busy", None
        except DomainError as exc:
            log.warning("schedule.dispatch_refused", schedule=schedule.name, code=exc.code)
            return f"refused_{exc.code}"[:40], None
        execution_id = str(result.execution.id)
        if result.created:
            return "dispatched", execution_id
        if schedule.overlap_policy == OverlapPolicy.SKIP:
            return "skipped_overlap", execution_id
        return "already_active", execution_id
