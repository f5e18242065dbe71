"""The dispatcher: the only creator of executions, and the one place that submits them.

API, admin, CLI, scheduler, retries and DLQ replays all call `dispatch()`. A submit to the
backend happens after the row is committed and inside the `pending -> queued` transition's own
transaction, so a worker can never claim a row that is not yet `queued`, and a failed send leaves
the row `pending` for the reconciler: nothing accepted is lost.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from executions import metrics
from executions.backends import get_backend
from executions.errors import (
    BackpressureRejected,
    IdempotencyConflict,
    InvalidLane,
    KeyBusy,
)
from executions.models import (
    ACTIVE_STATUSES,
    Execution,
    ExecutionEvent,
    Lane,
    LaneName,
    Status,
)
from executions.registry import KeyPolicy, PipelineSpec, registry
from executions.transitions import (
    Actor,
    InvalidTransition,
    record_event,
    transition,
    update_fields,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DispatchResult:
    """The execution a submission resolved to, and whether this call created it."""

    execution: Execution
    created: bool


def dispatch(
    pipeline: str,
    params: dict[str, Any] | None = None,
    *,
    trigger_source: str,
    lane: str | None = None,
    created_by: AbstractBaseUser | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    parent: Execution | None = None,
    max_attempts: int | None = None,
    not_before: datetime | None = None,
    actor: Actor | None = None,
) -> DispatchResult:
    """Validate, deduplicate, apply backpressure, record, and (after commit) submit.

    `actor` says who asked and through which interface (its `source`), when that differs from
    the trigger: an operator's retry in the admin has trigger `retry` and source `admin`.
    """
    spec = registry.get(pipeline)
    model = spec.validate(params)
    clean_params = model.model_dump(mode="json")
    lane = str(lane or spec.lane)
    if lane not in LaneName.values:
        raise InvalidLane(
            f"Unknown lane {lane!r}; lanes are {', '.join(LaneName.values)}.",
            details={"lane": [f"Must be one of {LaneName.values}."]},
        )
    if request_id is None:
        request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    if created_by is not None and not created_by.is_authenticated:
        created_by = None

    if idempotency_key:
        existing = Execution.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return DispatchResult(
                _same_payload_or_conflict(existing, pipeline, clean_params, lane), False
            )

    logical_key = spec.logical_key_for(model)
    if logical_key and spec.on_key_collision == KeyPolicy.RETURN_ACTIVE:
        active = _active_for_key(logical_key)
        if active is not None:
            return DispatchResult(active, False)

    _check_backpressure(lane, pipeline)

    now = timezone.now()
    execution = Execution(
        pipeline=pipeline,
        params=clean_params,
        lane=lane,
        status=Status.PENDING,
        trigger_source=trigger_source,
        created_by=created_by,
        request_id=request_id or "",
        logical_key=logical_key,
        idempotency_key=idempotency_key or None,
        max_attempts=max_attempts or spec.retry.max_attempts,
        parent=parent,
        root_id=(parent.root_id or parent.id) if parent is not None else None,
        not_before=not_before,
        deadline_at=spec.deadline_for(model, now),
        created_at=now,
    )
    actor = actor or Actor(
        name=created_by.get_username() if created_by else trigger_source,
        user=created_by,
        source=trigger_source,
        request_id=request_id or "",
    )
    try:
        with transaction.atomic():
            execution.save(force_insert=True)
            ExecutionEvent.objects.create(
                execution=execution,
                at=now,
                kind="created",
                to_status=Status.PENDING,
                actor=actor.name,
                actor_user=actor.user,
                source=actor.source,
                reason=actor.reason,
                request_id=request_id or "",
                data={"trigger_source": trigger_source, "parent": str(parent.id)} if parent else {},
            )
            transaction.on_commit(lambda: submit(execution.id))
    except IntegrityError:
        return _resolve_collision(spec, execution, clean_params)

    metrics.EXECUTIONS_SUBMITTED.labels(pipeline, lane, trigger_source).inc()
    log.info(
        "execution.created",
        execution_id=str(execution.id),
        pipeline=pipeline,
        lane=lane,
        trigger_source=trigger_source,
    )
    return DispatchResult(execution, True)


def submit(execution_id: UUID | str, *, actor: Actor | None = None) -> bool:
    """Move a `pending` execution to `queued` and send it; False if it stays pending.

    It stays pending when its lane is paused or the backend refused the send (an event says why).
    """
    actor = actor or Actor.system("dispatcher")
    row = (
        Execution.objects.filter(pk=execution_id, status=Status.PENDING)
        .values("lane", "not_before")
        .first()
    )
    if row is None:
        return False  # already submitted, or cancelled before the submit ran
    if Lane.objects.filter(name=row["lane"], paused=True).exists():
        log.info("execution.held", execution_id=str(execution_id), lane=row["lane"])
        return False
    delay = _delay_until(row["not_before"])
    try:
        return _send(
            execution_id,
            frm=Status.PENDING,
            kind="submitted",
            actor=actor,
            lane=row["lane"],
            delay=delay,
        )
    except InvalidTransition:
        # Another writer (a cancel, the reconciler, a second submit) moved it first: not an error
        # for whoever asked for the submit, and nothing was sent.
        return False


def requeue(
    execution_id: UUID | str,
    *,
    delay_seconds: float,
    kind: str,
    actor: Actor,
    attempt: int,
    where: Q | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    """Move a `running` execution back to `queued` for another attempt after `delay_seconds`.

    Used by the runner (retry with backoff) and the reconciler (a lost worker's run). It applies
    only while the row is still at `attempt` (and matches `where`). If the send fails, the row is
    still committed as `queued` and the reconciler sends it again later.
    """
    guard = Q(attempt=attempt) & (where if where is not None else Q())
    lane = Execution.objects.filter(pk=execution_id).values_list("lane", flat=True).get()
    not_before = timezone.now() + timedelta(seconds=delay_seconds)
    sent = _send(
        execution_id,
        frm=Status.RUNNING,
        kind=kind,
        actor=actor,
        lane=lane,
        delay=delay_seconds,
        where=guard,
        data={**(data or {}), "delay_seconds": round(delay_seconds, 3)},
        not_before=not_before,
        lease_expires_at=None,
        worker_id="",
        **fields,
    )
    if not sent:
        transition(
            execution_id,
            frm=Status.RUNNING,
            to=Status.QUEUED,
            kind=kind,
            actor=actor,
            where=guard,
            data={**(data or {}), "delay_seconds": round(delay_seconds, 3), "sent": False},
            not_before=not_before,
            queued_at=timezone.now(),
            lease_expires_at=None,
            worker_id="",
            **fields,
        )


def resend(execution_id: UUID | str, *, actor: Actor, reason: str) -> bool:
    """Send a `queued` execution's message again (the broker lost it); duplicates are harmless."""
    row = (
        Execution.objects.filter(pk=execution_id, status=Status.QUEUED)
        .values("lane", "not_before")
        .first()
    )
    if row is None:
        return False
    backend = get_backend()
    try:
        run_id = backend.submit(str(execution_id), row["lane"], _delay_until(row["not_before"]))
    except Exception as exc:
        log.warning("execution.resend_failed", execution_id=str(execution_id), error=str(exc))
        return False
    update_fields(
        execution_id,
        kind="resubmitted",
        actor=actor,
        data={"reason": reason, "backend_run_id": run_id},
        where=Q(status=Status.QUEUED),
        backend=backend.name,
        backend_run_id=run_id,
        queued_at=timezone.now(),
    )
    return True


# --- internals -----------------------------------------------------------------------------------


def _send(execution_id, *, frm, kind, actor, lane, delay, where=None, data=None, **fields):
    """Apply `frm -> queued` and send in one transaction; False if the send failed."""
    backend = get_backend()
    try:
        with transaction.atomic():
            transition(
                execution_id,
                frm=frm,
                to=Status.QUEUED,
                kind=kind,
                actor=actor,
                where=where,
                data=data,
                backend=backend.name,
                queued_at=timezone.now(),
                **fields,
            )
            run_id = backend.submit(str(execution_id), lane, delay)
            Execution.objects.filter(pk=execution_id).update(backend_run_id=run_id)
    except InvalidTransition:
        raise
    except Exception as exc:
        metrics.SUBMIT_FAILURES.labels(backend.name).inc()
        log.warning("execution.submit_failed", execution_id=str(execution_id), error=str(exc))
        record_event(
            execution_id,
            kind="submit_failed",
            actor=actor,
            data={"backend": backend.name, "error": f"{type(exc).__name__}: {exc}"[:2000]},
        )
        return False
    return True


def _delay_until(not_before: datetime | None) -> float:
    if not_before is None:
        return 0.0
    return max(0.0, (not_before - timezone.now()).total_seconds())


def _active_for_key(logical_key: str) -> Execution | None:
    return Execution.objects.filter(logical_key=logical_key, status__in=ACTIVE_STATUSES).first()


def _same_payload_or_conflict(existing: Execution, pipeline, params, lane) -> Execution:
    if (existing.pipeline, existing.params, existing.lane) != (pipeline, params, lane):
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different payload.",
            details={"execution_id": str(existing.id)},
        )
    return existing


def _resolve_collision(spec: PipelineSpec, execution: Execution, params) -> DispatchResult:
    """After a unique violation, find who won: the idempotency key or the logical key."""
    if execution.idempotency_key:
        existing = Execution.objects.filter(idempotency_key=execution.idempotency_key).first()
        if existing is not None:
            return DispatchResult(
                _same_payload_or_conflict(existing, spec.name, params, execution.lane), False
            )
    active = _active_for_key(execution.logical_key) if execution.logical_key else None
    if active is not None and spec.on_key_collision == KeyPolicy.RETURN_ACTIVE:
        return DispatchResult(active, False)
    metrics.DISPATCH_REJECTED.labels(spec.name, execution.lane, "key_busy").inc()
    raise KeyBusy(
        f"An execution with logical key {execution.logical_key!r} is already active.",
        details={
            "logical_key": execution.logical_key,
            "execution_id": str(active.id) if active else None,
        },
    )


def _check_backpressure(lane: str, pipeline: str) -> None:
    """Refuse with 429 when the lane or the whole ledger has too many active executions.

    The counts are read, not locked: concurrent dispatches may overshoot a cap by a few rows,
    which is acceptable for a backpressure signal and keeps dispatch free of a global lock.
    """
    counts = dict(
        Execution.objects.filter(status__in=ACTIVE_STATUSES)
        .values_list("lane")
        .annotate(n=Count("id"))
        .values_list("lane", "n")
    )
    lane_cap = settings.SPINE_LANE_LIMITS.get(lane)
    retry_after = settings.SPINE_RETRY_AFTER_SECONDS
    if lane_cap is not None and counts.get(lane, 0) >= lane_cap:
        metrics.DISPATCH_REJECTED.labels(pipeline, lane, "lane_full").inc()
        raise BackpressureRejected(
            f"Lane {lane!r} has {counts.get(lane, 0)} active executions (cap {lane_cap}).",
            reason="lane_full",
            retry_after=retry_after,
            details={"lane": lane, "active": counts.get(lane, 0), "cap": lane_cap},
        )
    total = sum(counts.values())
    if total >= settings.SPINE_MAX_PENDING:
        metrics.DISPATCH_REJECTED.labels(pipeline, lane, "global_full").inc()
        raise BackpressureRejected(
            f"The ledger has {total} active executions (cap {settings.SPINE_MAX_PENDING}).",
            reason="global_full",
            retry_after=retry_after,
            details={"active": total, "cap": settings.SPINE_MAX_PENDING},
        )
