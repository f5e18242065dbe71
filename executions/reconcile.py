"""The reconciler (SPEC §4.6): puts the ledger and the backend back in step after a crash.

One pass plans repairs from the ledger, then applies each with the same compare-and-set functions
the dispatcher and runner use, so a pass is safe to run at any time, twice, or from two places:

- `submit`: a `pending` row the dispatcher never submitted (a crash between commit and send, the
  broker down) or whose lane was resumed -> `dispatcher.submit`.
- `resend`: a `queued` row due for longer than a grace period, whose message the broker lost (a
  flushed Redis, a killed worker's prefetched messages) -> `dispatcher.resend`. A duplicate
  message is harmless: the runner's claim is a compare-and-set. Not on a paused lane: its
  retries wait there without a message until the resume sends them.
- `worker_lost`: a `running` row whose lease expired -> cancel at the backend first, then count
  the attempt as failed: retry with backoff, or dead-letter (`runner.record_lost_attempt`).
- `finish_cancel`: a cancel request on a running row that was not honoured within a grace period,
  or whose worker is gone -> `cancelled`.
"""

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import structlog
from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from executions import dispatcher, metrics, runner
from executions.backends import get_backend
from executions.errors import InvalidTransition
from executions.models import Execution, Lane, Status
from executions.transitions import Actor, transition

log = structlog.get_logger(__name__)

RECONCILER = "reconciler"
_PLAN_FIELDS = (
    *("id", "pipeline", "lane", "status", "attempt", "created_at", "queued_at", "not_before"),
    *("worker_id", "lease_expires_at", "cancel_requested_at"),
)


class Kind(StrEnum):
    """What the reconciler does to one execution."""

    SUBMIT = "submit"
    RESEND = "resend"
    WORKER_LOST = "worker_lost"
    FINISH_CANCEL = "finish_cancel"


@dataclass(frozen=True)
class Action:
    """One planned repair."""

    kind: Kind
    execution_id: UUID
    pipeline: str
    lane: str
    status: str
    attempt: int
    why: str

    def describe(self) -> str:
        return (
            f"{self.kind.value:<13} {self.execution_id} {self.pipeline} lane={self.lane} "
            f"{self.status} attempt={self.attempt}: {self.why}"
        )


@dataclass
class Report:
    """What one pass planned and, unless a dry run, what came of each action."""

    started_at: datetime
    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    backend_health: str = "ok"

    def summary(self) -> str:
        planned = Counter(a.kind.value for a in self.actions)
        parts = [f"{k}={planned.get(k.value, 0)}" for k in Kind]
        text = "planned " + ", ".join(parts)
        if self.dry_run:
            return text + " (dry run: nothing changed)"
        done = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items())) or "nothing to do"
        health = "" if self.backend_health == "ok" else f"; backend {self.backend_health}"
        return f"{text}; outcomes {done}{health}"


def plan(
    *, now: datetime | None = None, limit: int = 500, depths: dict[str, int] | None = None
) -> list[Action]:
    """The repairs due now, at most `limit` of each kind, oldest first.

    With the backend's `depths` (messages waiting per lane), a lane whose broker still holds at
    least as many messages as the lane has `queued` rows is taken to have lost nothing: its rows
    are merely waiting behind a backlog, and re-sending them would only add duplicates.
    """
    now = now or timezone.now()
    paused = set(Lane.objects.filter(paused=True).values_list("name", flat=True))
    intact = set()
    if depths:
        queued = Counter(
            Execution.objects.filter(status=Status.QUEUED).values_list("lane", flat=True)
        )
        intact = {lane for lane, n in queued.items() if depths.get(lane, 0) >= n}
    pending_cutoff = now - timedelta(seconds=settings.SPINE_RECONCILE_PENDING_GRACE_SECONDS)
    queued_cutoff = now - timedelta(seconds=settings.SPINE_RECONCILE_QUEUED_GRACE_SECONDS)
    cancel_cutoff = now - timedelta(seconds=settings.SPINE_CANCEL_GRACE_SECONDS)
    actions: list[Action] = []

    def add(kind: Kind, rows, why: Callable[[dict], str]) -> None:
        for r in rows.values(*_PLAN_FIELDS)[:limit]:
            actions.append(
                Action(kind, r["id"], r["pipeline"], r["lane"], r["status"], r["attempt"], why(r))
            )

    add(
        Kind.SUBMIT,
        Execution.objects.filter(status=Status.PENDING, created_at__lt=pending_cutoff)
        .exclude(lane__in=paused)
        .order_by("created_at"),
        lambda r: f"pending for {_age(now, r['created_at'])}, never sent",
    )
    add(
        Kind.RESEND,
        Execution.objects.filter(status=Status.QUEUED)
        .exclude(lane__in=intact | paused)  # a paused lane's held retries wait for the resume
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=queued_cutoff))
        .filter(Q(not_before__isnull=True) | Q(not_before__lt=queued_cutoff))
        .order_by("queued_at"),
        lambda r: f"queued and due for {_age(now, _due(r))}, no worker claimed it",
    )
    cancel_due = Q(cancel_requested_at__lt=cancel_cutoff) | Q(
        cancel_requested_at__isnull=False, lease_expires_at__lt=now
    )
    add(
        Kind.FINISH_CANCEL,
        Execution.objects.filter(status=Status.RUNNING).filter(cancel_due).order_by("started_at"),
        lambda r: f"cancel requested {_age(now, r['cancel_requested_at'])} ago, not honoured",
    )
    add(
        Kind.WORKER_LOST,
        Execution.objects.filter(
            status=Status.RUNNING, lease_expires_at__lt=now, cancel_requested_at__isnull=True
        ).order_by("lease_expires_at"),
        lambda r: (
            f"lease of worker {r['worker_id'] or '?'} expired "
            f"{_age(now, r['lease_expires_at'])} ago"
        ),
    )
    return actions


def reconcile(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    limit: int = 500,
    on_action: Callable[[Action, str], None] | None = None,
) -> Report:
    """Plan and (unless `dry_run`) apply one pass of repairs; `on_action` hears each outcome."""
    now = now or timezone.now()
    backend = get_backend()
    try:
        depths = backend.queue_depths()
    except Exception as exc:  # unknown: every stale queued row is re-sent
        log.warning("reconcile.queue_depths_failed", error=str(exc))
        depths = None
    report = Report(
        started_at=now, dry_run=dry_run, actions=plan(now=now, limit=limit, depths=depths)
    )
    if dry_run or not report.actions:
        return report
    needs_broker = any(a.kind in (Kind.SUBMIT, Kind.RESEND) for a in report.actions)
    if needs_broker:
        health = backend.health()
        report.backend_health = health.get("status", "down")
    actor = Actor.system(RECONCILER)
    for action in report.actions:
        if action.kind in (Kind.SUBMIT, Kind.RESEND) and report.backend_health != "ok":
            outcome = "backend_down"  # try again next pass rather than fail every row now
        else:
            try:
                outcome = _APPLY[action.kind](action, backend=backend, actor=actor, now=now)
            except Exception as exc:  # one bad row must not stop the pass
                log.exception("reconcile.action_failed", execution_id=str(action.execution_id))
                outcome = f"error:{type(exc).__name__}"
        report.outcomes[f"{action.kind.value}:{outcome}"] += 1
        metrics.RECONCILE_ACTIONS.labels(action.kind.value, outcome).inc()
        log.info(
            "reconcile.action",
            action=action.kind.value,
            execution_id=str(action.execution_id),
            outcome=outcome,
        )
        if on_action is not None:
            on_action(action, outcome)
    return report


def run_loop(
    *,
    interval: float,
    stop: threading.Event,
    dry_run: bool = False,
    on_report: Callable[[Report], None] | None = None,
    on_action: Callable[[Action, str], None] | None = None,
    limit: int = 500,
) -> None:
    """Run a pass every `interval` seconds until `stop` is set; a failed pass is logged."""
    while not stop.is_set():
        close_old_connections()
        try:
            report = reconcile(dry_run=dry_run, limit=limit, on_action=on_action)
        except Exception:
            log.exception("reconcile.pass_failed")  # e.g. the database is restarting
        else:
            if on_report is not None:
                on_report(report)
        finally:
            close_old_connections()
        stop.wait(interval)


# --- applying one action -------------------------------------------------------------------------


def _submit(action: Action, *, backend, actor: Actor, now: datetime) -> str:
    try:
        if dispatcher.submit(action.execution_id, actor=actor):
            return "submitted"
    except InvalidTransition:
        return "skipped"  # its dispatcher (or another reconciler) submitted it meanwhile
    status = _status(action.execution_id)
    return "submit_failed" if status == Status.PENDING else "skipped"


def _resend(action: Action, *, backend, actor: Actor, now: datetime) -> str:
    if dispatcher.resend(action.execution_id, actor=actor, reason="lost by the broker"):
        return "resent"
    return "resend_failed" if _status(action.execution_id) == Status.QUEUED else "skipped"


def _worker_lost(action: Action, *, backend, actor: Actor, now: datetime) -> str:
    execution = Execution.objects.filter(pk=action.execution_id).first()
    if execution is None or execution.status != Status.RUNNING:
        return "skipped"
    _cancel_at_backend(backend, execution)
    status = runner.record_lost_attempt(execution, actor=actor, now=now)
    outcomes: dict[str, str] = {
        Status.QUEUED: "retried",
        Status.DEAD_LETTERED: "dead_lettered",
        Status.FAILED: "failed",
    }
    outcome = outcomes.get(status, "skipped")
    if outcome != "skipped":
        metrics.ORPHANS_RECOVERED.labels(execution.pipeline, outcome).inc()
    return outcome


def _finish_cancel(action: Action, *, backend, actor: Actor, now: datetime) -> str:
    execution = Execution.objects.filter(pk=action.execution_id).first()
    if execution is None or execution.status != Status.RUNNING:
        return "skipped"
    _cancel_at_backend(backend, execution)
    try:
        transition(
            execution.id,
            frm=Status.RUNNING,
            to=Status.CANCELLED,
            kind="cancelled",
            actor=actor,
            where=Q(attempt=execution.attempt, cancel_requested_at__isnull=False),
            data={"reason": action.why, "worker_id": execution.worker_id},
            finished_at=timezone.now(),
            lease_expires_at=None,
        )
    except InvalidTransition:
        return "skipped"  # its runner recorded an outcome meanwhile
    metrics.EXECUTIONS_COMPLETED.labels(execution.pipeline, Status.CANCELLED).inc()
    return "cancelled"


_APPLY = {
    Kind.SUBMIT: _submit,
    Kind.RESEND: _resend,
    Kind.WORKER_LOST: _worker_lost,
    Kind.FINISH_CANCEL: _finish_cancel,
}


def _cancel_at_backend(backend, execution: Execution) -> None:
    """Withdraw what the backend still holds for this run before the ledger settles it."""
    try:
        backend.cancel(str(execution.id), execution.backend_run_id)
    except Exception as exc:  # best effort: the runner's claim drops a stale message anyway
        log.warning(
            "reconcile.backend_cancel_failed", execution_id=str(execution.id), error=str(exc)
        )


def _status(execution_id: UUID) -> str | None:
    return Execution.objects.filter(pk=execution_id).values_list("status", flat=True).first()


def _due(row: dict) -> datetime:
    return max(filter(None, [row["queued_at"], row["not_before"]]), default=row["created_at"])


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "?"
    seconds = max(0.0, (now - then).total_seconds())
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}min"
