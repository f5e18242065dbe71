"""The dispatcher: the only creator of executions, and the one place that submits them.

API, admin, CLI, scheduler, retries and DLQ replays all call `dispatch()`. A submit to the
backend happens after the row is committed: the message is sent first, then `pending -> queued`
is written with its run id. A failed send leaves the row `pending` for the reconciler, and so
does a process that dies between the two: nothing accepted is lost. A message that reaches a
worker before its `queued` is written waits for it there (`runner._claim_late`).
"""

import functools
import json
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Exists, JSONField, OuterRef, Q
from django.utils import timezone

from executions import metrics
from executions.backends import get_backend, withdraw
from executions.errors import (
    BackpressureRejected,
    IdempotencyConflict,
    InvalidLane,
    KeyBusy,
)
from executions.models import (
    ACTIVE_STATUSES,
    Execution,
    Lane,
    LaneName,
    Status,
)
from executions.registry import KeyPolicy, PipelineSpec, registry
from executions.transitions import (
    Actor,
    Event,
    InvalidTransition,
    cas,
    event_insert_sql,
    one_statement_writes,
    record_event,
    run_sql,
    transition,
    update_fields,
    write_event,
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
    # created_by is the AUTH_USER_MODEL's user; django-stubs type the foreign key as auth.User
    execution = Execution(  # type: ignore[misc]
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
    created = Event(
        "created",
        actor,
        "",
        Status.PENDING,
        {"trigger_source": trigger_source, "parent": str(parent.id)} if parent else {},
    )
    try:
        _insert(execution, created)
        transaction.on_commit(
            lambda: _submit_pending(execution.id, lane, not_before, Actor.system("dispatcher"))
        )
    except IntegrityError:
        return _resolve_collision(spec, execution, clean_params)

    active_counts.created(lane)
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
        .annotate(paused=Exists(Lane.objects.filter(name=OuterRef("lane"), paused=True)))
        .values("lane", "not_before", "paused")
        .first()
    )
    if row is None:
        return False  # already submitted, or cancelled before the submit ran
    return _submit_pending(
        execution_id, row["lane"], row["not_before"], actor, paused=row["paused"]
    )


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
    still committed as `queued` and the reconciler sends it again later. On a paused lane nothing
    is sent: the row waits as `queued` without a message (`backend_run_id` empty) until the lane
    is resumed, which sends it (`services.set_lane_paused`).
    """
    guard = Q(attempt=attempt) & (where if where is not None else Q())
    lane = Execution.objects.filter(pk=execution_id).values_list("lane", flat=True).get()
    with transaction.atomic():
        paused = _lane_paused_locked(lane)
        if paused:
            log.info("execution.held", execution_id=str(execution_id), lane=lane)
        not_before = timezone.now() + timedelta(seconds=delay_seconds)
        sent = not paused and _send(
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
                data={
                    **(data or {}),
                    "delay_seconds": round(delay_seconds, 3),
                    "sent": False,
                    **({"held": "lane paused"} if paused else {}),
                },
                not_before=not_before,
                queued_at=timezone.now(),
                lease_expires_at=None,
                worker_id="",
                backend_run_id="",  # no message carries this attempt yet
                **fields,
            )


def _lane_paused_locked(lane: str) -> bool:
    """Whether `lane` is paused, read under a share lock on its row (PostgreSQL).

    A pause or resume updates that row, so it waits for the caller's transaction: a retry held
    because the lane was paused is committed before the resume looks for held retries.
    """
    if connection.vendor != "postgresql":  # SQLite: one process, writes already serialized
        return Lane.objects.filter(name=lane, paused=True).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT paused FROM {Lane._meta.db_table} WHERE name = %s FOR SHARE",  # noqa: S608
            [lane],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


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


def _submit_pending(
    execution_id: UUID | str,
    lane: str,
    not_before: datetime | None,
    actor: Actor,
    *,
    paused: bool | None = None,
) -> bool:
    """Send a `pending` execution, then record `pending -> queued` with its run id.

    The hot half of every dispatch: a read of the lane's pause, one send and one statement (see
    `transitions.cas`), with no transaction of its own and no lock. `paused` is the pause as the
    caller read it after the row was committed (None: read it now). Read any earlier, a resume
    that lists the lane's `pending` rows between that read and the row's commit would miss the
    row, and a pause committed in between would not hold it. A paused lane's work stays
    `pending`, unsent, until the lane is resumed. Inside a caller's transaction the write is
    part of it: a worker that gets the message first waits for that transaction to end
    (`transitions.settled_status`).

    - The send fails: the row stays `pending` with a `submit_failed` event, and the reconciler
      submits it later.
    - The row moved meanwhile (a cancel, another submit): the compare-and-set changes nothing,
      and the message is withdrawn where the backend can (the claim would drop it anyway).
    - The process dies after the send: the row stays `pending`; a worker that got the message
      waits for `queued` for a while, then drops it, and the reconciler submits the row again.
    """
    if paused is None:
        paused = _lane_paused(lane)
    if paused:
        log.info("execution.held", execution_id=str(execution_id), lane=lane)
        return False
    backend = get_backend()
    try:
        run_id = backend.submit(str(execution_id), lane, _delay_until(not_before))
    except Exception as exc:
        _submit_failed(execution_id, backend.name, actor, exc)
        return False
    in_callers_transaction = connection.in_atomic_block
    try:
        moved = cas(
            execution_id,
            frm=Status.PENDING,
            to=Status.QUEUED,
            kind="submitted",
            actor=actor,
            values={
                "backend": backend.name,
                "backend_run_id": run_id,
                "queued_at": timezone.now(),
            },
            # Losing this commit in a database crash leaves the row `pending` with its message
            # sent: the claim drops that message and the reconciler submits the row again. So
            # the commit need not wait for the WAL flush, unless it is a caller's transaction.
            durable=in_callers_transaction,
        )
    except DatabaseError as exc:
        if in_callers_transaction:
            raise  # the caller's transaction is broken: its caller must know
        # Sent but not recorded (the database went away): the row stays `pending`, accepted.
        log.warning("execution.submit_unrecorded", execution_id=str(execution_id), error=str(exc))
        return False
    if moved is None:
        log.info("execution.submit_lost_race", execution_id=str(execution_id), run_id=run_id)
        withdraw(backend, str(execution_id), run_id)  # the claim would drop it anyway
        return False
    return True


def _lane_paused(lane: str) -> bool:
    """Whether `lane` is paused, read now (a hot statement: one per dispatch)."""
    row = run_sql(
        f"SELECT EXISTS (SELECT 1 FROM {Lane._meta.db_table} WHERE name = %s AND paused)",
        [lane],
    )
    return bool(row and row[0])


@functools.cache
def _insert_sql() -> str:
    """The execution's INSERT (all columns, as the values list) with its event, PostgreSQL."""
    fields = Execution._meta.local_concrete_fields
    columns = ", ".join(str(f.column) for f in fields)
    placeholders = ", ".join("%s::jsonb" if isinstance(f, JSONField) else "%s" for f in fields)
    return (
        f"WITH made AS (INSERT INTO {Execution._meta.db_table} ({columns}) "
        f"VALUES ({placeholders}) RETURNING id) {event_insert_sql('made')}"
    )


def _insert(execution: Execution, created: Event) -> None:
    """INSERT the execution and its `created` event in one transaction (IntegrityError on a key).

    On PostgreSQL one statement (a data-modifying CTE adds the event), so the create is one
    round trip and one commit; the values are the model's own (defaults applied by Django), and
    psycopg adapts them as Django would (JSON goes as text cast to jsonb).
    """
    if not one_statement_writes():
        with transaction.atomic():
            execution.save(force_insert=True)
            write_event(execution.id, created)
        return
    fields = Execution._meta.local_concrete_fields
    values = [
        json.dumps(v, cls=DjangoJSONEncoder) if isinstance(f, JSONField) and v is not None else v
        for f in fields
        for v in [getattr(execution, f.attname)]
    ]
    # One statement is its own transaction; inside a caller's, a savepoint keeps a key collision
    # from breaking it.
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        run_sql(_insert_sql(), [*values, *created.values(execution.created_at)])
    execution._state.adding = False
    execution._state.db = "default"


def _send(
    execution_id: UUID | str,
    *,
    frm: str,
    kind: str,
    actor: Actor,
    lane: str,
    delay: float,
    where: Q | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
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
        _submit_failed(execution_id, backend.name, actor, exc)
        return False
    return True


def _submit_failed(
    execution_id: UUID | str, backend_name: str, actor: Actor, exc: Exception
) -> None:
    """Count, log and record a send the backend refused (the row stays where it was)."""
    metrics.SUBMIT_FAILURES.labels(backend_name).inc()
    log.warning("execution.submit_failed", execution_id=str(execution_id), error=str(exc))
    record_event(
        execution_id,
        kind="submit_failed",
        actor=actor,
        data={"backend": backend_name, "error": f"{type(exc).__name__}: {exc}"[:2000]},
    )


def _delay_until(not_before: datetime | None) -> float:
    if not_before is None:
        return 0.0
    return max(0.0, (not_before - timezone.now()).total_seconds())


def _active_for_key(logical_key: str) -> Execution | None:
    return Execution.objects.filter(logical_key=logical_key, status__in=ACTIVE_STATUSES).first()


def _same_payload_or_conflict(
    existing: Execution, pipeline: str, params: dict[str, Any], lane: str
) -> Execution:
    if (existing.pipeline, existing.params, existing.lane) != (pipeline, params, lane):
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different payload.",
            details={"execution_id": str(existing.id)},
        )
    return existing


def _resolve_collision(
    spec: PipelineSpec, execution: Execution, params: dict[str, Any]
) -> DispatchResult:
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


class _ActiveCounts:
    """Active executions per lane, counted again only when a cap may be near.

    The count scans the status index, so its cost grows with the backlog (about 2 ms at a few
    thousand queued rows, more than the rest of a dispatch). With
    `SPINE_BACKPRESSURE_RECOUNT_SECONDS` above 0 (default 0: count every time), a count up to
    that old is used while every cap is far (under half of it, counting this process's own
    dispatches since the count); nearer, every dispatch counts again, so a refusal is always
    based on a fresh count. Counts are read, not locked: concurrent dispatches can overshoot a
    cap by a few rows, and with reuse each of P dispatching processes may admit up to half a
    cap on an old count (up to about P/2 caps over). That is the price of the setting, for
    deployments whose caps are large enough that counting dominates a dispatch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._counted_at = float("-inf")

    def get(self, lane: str) -> dict[str, int]:
        lane_cap = settings.SPINE_LANE_LIMITS.get(lane)
        max_age = settings.SPINE_BACKPRESSURE_RECOUNT_SECONDS
        with self._lock:
            fresh = time.monotonic() - self._counted_at < max_age
            counts = dict(self._counts)
        far = (lane_cap is None or counts.get(lane, 0) * 2 < lane_cap) and sum(
            counts.values()
        ) * 2 < settings.SPINE_MAX_PENDING
        if fresh and far:
            return counts
        counts = _count_active()
        with self._lock:
            self._counts, self._counted_at = dict(counts), time.monotonic()
        return counts

    def created(self, lane: str) -> None:
        """Count this process's own dispatch until the next count."""
        with self._lock:
            self._counts[lane] = self._counts.get(lane, 0) + 1

    def forget(self) -> None:
        with self._lock:
            self._counts, self._counted_at = {}, float("-inf")


active_counts = _ActiveCounts()


def _count_active() -> dict[str, int]:
    """Active executions per lane, counted now."""
    return dict(
        Execution.objects.filter(status__in=ACTIVE_STATUSES)
        .values_list("lane")
        .annotate(n=Count("id"))
        .values_list("lane", "n")
    )


def _check_backpressure(lane: str, pipeline: str) -> None:
    """Refuse with 429 when the lane or the whole ledger has too many active executions."""
    counts = active_counts.get(lane)
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
