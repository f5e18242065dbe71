"""The runner: the only place pipeline handlers are called (SPEC §4.4).

`run_execution()` claims the execution with one compare-and-set, runs the handler under a
monitor thread (lease heartbeat, cancel requests, timeout), and records the outcome: completed,
retried with backoff, failed, cancelled, or dead-lettered. Anything it cannot claim (a duplicate
delivery, a cancelled or finished execution) is dropped.
"""

import functools
import heapq
import itertools
import json
import os
import queue
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict
from uuid import UUID

import structlog
import tenacity
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from dramatiq.middleware.threading import raise_thread_exception

from executions import dispatcher, metrics
from executions.errors import (
    DomainError,
    ExecutionCancelled,
    ExecutionTimeout,
    InvalidTransition,
    LeaseLost,
    NotPublishedYet,
    PermanentError,
    WorkerLost,
)
from executions.models import Execution, Status
from executions.registry import PipelineSpec, registry
from executions.signals import execution_dead_lettered
from executions.transitions import (
    Actor,
    Sql,
    cas,
    cas_fetch,
    renew_lease,
    settled_status,
    transition,
)

log = structlog.get_logger(__name__)

RUNNER = "runner"
_INTERRUPT_GRACE_SECONDS = 2.0  # time a handler gets to stop by itself before it is interrupted
_RESULT_LIMIT = 16_000  # characters of JSON kept as the result summary


def default_worker_id() -> str:
    """`host:pid:thread`, unique per worker thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


@dataclass
class RunContext:
    """What a handler gets besides its params."""

    execution_id: UUID
    pipeline: str
    attempt: int
    max_attempts: int
    deadline: datetime | None
    logger: Any
    request_id: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop_reason: str = ""

    def check_cancelled(self) -> None:
        """Raise if this run was cancelled, timed out, or lost its lease; call it between steps."""
        if self._stop.is_set():
            raise _STOP_ERRORS.get(self._stop_reason, ExecutionCancelled)(self._stop_reason)

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once (and raising) if the run must stop."""
        self._stop.wait(max(0.0, seconds))
        self.check_cancelled()


_STOP_ERRORS: dict[str, type[BaseException]] = {
    "cancelled": ExecutionCancelled,
    "timeout": ExecutionTimeout,
    "lease_lost": LeaseLost,
}


def run_execution(execution_id: UUID | str, *, worker_id: str | None = None) -> str | None:
    """Claim and run one execution; return its status afterwards, or None if it was not claimed."""
    worker_id = worker_id or default_worker_id()
    execution = _claim(execution_id, worker_id)
    if execution is None:
        return None
    structlog.contextvars.bind_contextvars(
        execution_id=str(execution.id),
        pipeline=execution.pipeline,
        attempt=execution.attempt,
        request_id=execution.request_id,
    )
    try:
        return _run_claimed(execution, worker_id)
    finally:
        structlog.contextvars.unbind_contextvars(
            "execution_id", "pipeline", "attempt", "request_id"
        )


def _claim(execution_id: UUID | str, worker_id: str) -> Execution | None:
    """`queued` and due, or `running` with an expired lease -> `running`, attempt + 1."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.SPINE_LEASE_SECONDS)
    actor = Actor.system(RUNNER, data={"worker_id": worker_id})
    # Almost every claim is this one statement.
    execution = _claim_queued(execution_id, worker_id, now, lease, actor)
    if execution is None:
        execution, why = _claim_late(execution_id, worker_id, actor)
        if execution is None:
            log.info("execution.claim_refused", execution_id=str(execution_id), why=why)
            return None
        now = timezone.now()
    waited_from = max(filter(None, [execution.queued_at, execution.not_before]), default=None)
    if waited_from is not None:
        metrics.QUEUE_WAIT.labels(execution.lane).observe(
            max(0.0, (now - waited_from).total_seconds())
        )
    return execution


# How long a message waits for its execution's `pending -> queued` before it is dropped. The
# dispatcher writes that right after the send, so the wait is usually a millisecond or two; a
# dispatcher that died in between leaves the row `pending`, and the reconciler submits it again.
PENDING_WAIT_SECONDS = 10.0


def _claim_late(execution_id, worker_id, actor) -> tuple[Execution | None, str]:
    """The claim of a message that did not find its execution `queued` and due: (it, or why not).

    The status is read once no writer holds the row (`transitions.settled_status`), so a
    message sent inside a transaction (a retry's requeue, a submit in a caller's transaction)
    waits for that transaction's end. Then:

    - Still `pending`: the dispatcher sends first and writes `queued` right after, so a message
      can arrive first (with RabbitMQ, which pushes to an idle worker at once, most do). Poll
      for that write with a growing pause, up to `PENDING_WAIT_SECONDS`, then claim.
    - `running` with an expired lease: a dead worker's run, taken over.
    - Anything else (finished, cancelled, not yet due, claimed by another worker): dropped.
    """
    started = time.monotonic()
    pause = 0.0005
    while (status := settled_status(execution_id)) == Status.PENDING:
        if time.monotonic() + pause > started + PENDING_WAIT_SECONDS:
            return None, "still pending"
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
    if status is None:
        return None, "missing"
    if pause > 0.0005:
        waited_ms = round((time.monotonic() - started) * 1000, 1)
        log.info("execution.claim_waited", execution_id=str(execution_id), waited_ms=waited_ms)
    now = timezone.now()
    lease = now + timedelta(seconds=settings.SPINE_LEASE_SECONDS)
    if status == Status.QUEUED:
        return _claim_queued(execution_id, worker_id, now, lease, actor), status
    if status == Status.RUNNING:
        return _take_over(execution_id, worker_id, now, lease, actor), status
    return None, status


def _claim_queued(execution_id, worker_id, now, lease, actor) -> Execution | None:
    """A `queued` run that is due -> `running`."""
    return _claim_as(
        execution_id,
        worker_id,
        now,
        lease,
        actor,
        frm=Status.QUEUED,
        kind="started",
        condition="not_before IS NULL OR not_before <= %s",
    )


def _take_over(execution_id, worker_id, now, lease, actor) -> Execution | None:
    """A dead worker's run (`running`, lease expired) claimed again, while attempts remain.

    An exhausted run is not taken over: the reconciler dead-letters it (worker_lost), so a
    poison run that kills its worker stops at max_attempts.
    """
    return _claim_as(
        execution_id,
        worker_id,
        now,
        lease,
        actor,
        frm=Status.RUNNING,
        kind="lease_takeover",
        condition="lease_expires_at < %s AND attempt < max_attempts",
    )


def _claim_as(execution_id, worker_id, now, lease, actor, *, frm, kind, condition):
    """`frm -> running` where `condition` (on `now`) holds: the next attempt, this worker's."""
    return cas_fetch(
        execution_id,
        frm=frm,
        to=Status.RUNNING,
        kind=kind,
        actor=actor,
        values={
            "attempt": Sql("attempt + 1"),
            "worker_id": worker_id,
            "lease_expires_at": lease,
            "started_at": Sql("COALESCE(started_at, %s)", now),
        },
        condition=condition,
        condition_params=(now,),
    )


def _run_claimed(execution: Execution, worker_id: str) -> str:
    ctx = RunContext(
        execution_id=execution.id,
        pipeline=execution.pipeline,
        attempt=execution.attempt,
        max_attempts=execution.max_attempts,
        deadline=execution.deadline_at,
        logger=log,
        request_id=execution.request_id,
    )
    outcome = _Outcome(execution, worker_id)
    try:
        spec = registry.get(execution.pipeline)
        params = spec.validate(execution.params)
    except DomainError as exc:  # unknown pipeline or params that no longer validate
        return outcome.failed(exc)

    log.info("execution.started", worker_id=worker_id)
    monitor = _Monitor(ctx, worker_id, threading.get_ident(), spec.timeout_seconds)
    started = time.monotonic()
    try:
        monitor.start()
        try:
            result = spec.handler(params, ctx)
        finally:
            monitor.disarm()
    except ExecutionCancelled:
        return outcome.cancelled()
    except LeaseLost:
        log.warning("execution.lease_lost", worker_id=worker_id)
        return Status.RUNNING
    except ExecutionTimeout as exc:
        return outcome.retry_or_dead_letter(spec, exc, reason="timeout")
    except PermanentError as exc:
        return outcome.failed(exc)
    except DomainError as exc:  # e.g. a backfill's dispatch: busy (429/503) is worth a retry
        if exc.http_status in (429, 503):
            return outcome.retry_or_dead_letter(spec, exc, reason="busy")
        return outcome.failed(exc)
    except NotPublishedYet as exc:
        return outcome.retry_or_dead_letter(spec, exc, reason="not_published")
    except Exception as exc:  # retryable by default: a surprise is assumed transient
        return outcome.retry_or_dead_letter(spec, exc, reason="error")
    finally:
        metrics.EXECUTION_DURATION.labels(execution.pipeline).observe(time.monotonic() - started)
    return outcome.completed(result)


def record_lost_attempt(execution: Execution, *, actor: Actor, now: datetime) -> str:
    """Count the attempt of a run whose lease expired (its worker died) as failed.

    Used by the reconciler. The same policy as a handler's retryable error: retry with backoff
    while attempts remain, else dead-letter. Guarded by the lost worker still holding the run and
    its lease still being expired, so a run whose worker came back or was taken over is left
    alone (InvalidTransition-free: the status afterwards is returned, `running` if left alone).
    """
    outcome = _Outcome(
        execution, execution.worker_id, actor=actor, where=Q(lease_expires_at__lt=now)
    )
    error = WorkerLost(
        f"worker {execution.worker_id or '?'} stopped renewing the lease of attempt "
        f"{execution.attempt} (expired at {execution.lease_expires_at:%Y-%m-%d %H:%M:%S}Z)"
        if execution.lease_expires_at
        else f"worker {execution.worker_id or '?'} lost attempt {execution.attempt}"
    )
    try:
        spec = registry.get(execution.pipeline)
    except DomainError as exc:
        return outcome.failed(exc)
    return outcome.retry_or_dead_letter(spec, error, reason="worker_lost")


def _reconnecting(method):
    """Retry an outcome write whose database connection was lost (a restart), reconnecting.

    Safe to repeat: every write is a compare-and-set guarded by this worker's attempt, so a
    write that did commit before the connection broke is refused the second time.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        if connection.in_atomic_block:  # an enclosing write retries as a whole
            return method(*args, **kwargs)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((OperationalError, InterfaceError)),
            stop=tenacity.stop_after_attempt(4),
            wait=tenacity.wait_exponential(multiplier=0.5, max=4),
            before_sleep=lambda state: connection.close(),
            reraise=True,
        )
        return retrying(method, *args, **kwargs)

    return wrapper


class _Outcome:
    """Records how one claimed attempt ended, guarded by this worker still holding the run."""

    def __init__(
        self,
        execution: Execution,
        worker_id: str,
        *,
        actor: Actor | None = None,
        where: Q | None = None,
    ) -> None:
        self.execution = execution
        self.worker_id = worker_id
        self.where = where
        self.guard = Q(worker_id=worker_id, attempt=execution.attempt)
        if where is not None:
            self.guard &= where
        self.actor = actor or Actor.system(RUNNER, data={"worker_id": worker_id})

    @_reconnecting
    def completed(self, result: Any) -> str:
        summary = _result_summary(result)
        return self._finish(
            Status.COMPLETED,
            "completed",
            result=summary,
            error_type="",
            error_message="",
            error_traceback="",
        )

    @_reconnecting
    def failed(self, exc: BaseException) -> str:
        return self._finish(Status.FAILED, "failed", **_error_fields(exc))

    @_reconnecting
    def cancelled(self) -> str:
        return self._finish(Status.CANCELLED, "cancelled")

    @_reconnecting
    def retry_or_dead_letter(self, spec: PipelineSpec, exc: BaseException, *, reason: str) -> str:
        ex = self.execution
        now = timezone.now()
        delay = spec.retry.delay_for(ex.attempt)
        until_deadline = reason == "not_published" and ex.deadline_at is not None
        if ex.deadline_at is not None and now + timedelta(seconds=delay) > ex.deadline_at:
            return self.dead_letter(exc, "deadline_missed")
        if not until_deadline and ex.attempt >= ex.max_attempts:
            return self.dead_letter(exc, "max_attempts")
        errors = _error_fields(exc)
        metrics.RETRIES.labels(ex.pipeline, reason).inc()
        log.info("execution.retry_scheduled", delay_s=round(delay, 3), reason=reason)
        try:
            dispatcher.requeue(
                ex.id,
                delay_seconds=delay,
                kind="retry_scheduled",
                actor=self.actor,
                attempt=ex.attempt,
                where=self.guard,
                data={
                    "attempt": ex.attempt,
                    "reason": reason,
                    "error_type": errors["error_type"],
                    "error_message": errors["error_message"][:500],
                },
                **errors,
            )
        except InvalidTransition:
            log.warning("execution.outcome_dropped", outcome="retry")
            return Status.RUNNING
        return Status.QUEUED

    @_reconnecting
    def dead_letter(self, exc: BaseException, reason: str) -> str:
        errors = _error_fields(exc)
        with transaction.atomic():
            status = self._finish(
                Status.DEAD_LETTERED, "dead_lettered", data={"reason": reason}, **errors
            )
            if status == Status.DEAD_LETTERED:
                execution_dead_lettered.send(
                    sender=Execution,
                    execution=Execution.objects.get(pk=self.execution.pk),
                    reason=reason,
                    error_summary=f"{errors['error_type']}: {errors['error_message']}"[:2000],
                )
        return status

    def _finish(self, to: str, kind: str, *, data: dict[str, Any] | None = None, **fields) -> str:
        if self.where is None:  # the runner's own outcome: the hot path, in one statement
            finished = cas(
                self.execution.id,
                frm=Status.RUNNING,
                to=to,
                kind=kind,
                actor=self.actor,
                guard={"worker_id": self.worker_id, "attempt": self.execution.attempt},
                data=data,
                values={"finished_at": timezone.now(), "lease_expires_at": None, **fields},
            )
        else:
            try:
                transition(
                    self.execution.id,
                    frm=Status.RUNNING,
                    to=to,
                    kind=kind,
                    actor=self.actor,
                    where=self.guard,
                    data=data,
                    finished_at=timezone.now(),
                    lease_expires_at=None,
                    **fields,
                )
                finished = ()
            except InvalidTransition:
                finished = None
        if finished is None:
            # Another worker took the run over, or the reconciler settled it: its outcome stands.
            log.warning("execution.outcome_dropped", outcome=to)
            return Status.RUNNING
        metrics.EXECUTIONS_COMPLETED.labels(self.execution.pipeline, to).inc()
        log.info(f"execution.{kind}")
        return to


class _MonitorThreads:
    """Daemon threads that run monitors, reused: a new thread per run cost a tenth of a no-op
    run's CPU. A monitor always starts at once, on an idle thread or a new one.

    Hand-written because `ThreadPoolExecutor` caps its threads (a run whose monitor waits for a
    free one would have no heartbeat) and joins them at interpreter exit (a stopping worker would
    wait for every handler to return).
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a task and not yet promised one

    def submit(self, task) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._serve, name="spine-monitor", daemon=True).start()
        self._tasks.put(task)

    def _serve(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                task()
            except Exception:
                log.exception("execution.monitor_failed")
            with self._lock:
                self._idle += 1


_MONITORS = _MonitorThreads()


class _MonitorTimer:
    """Hands each run's monitor to a thread when its first check is due, not when the run starts.

    Most runs (a no-op, a quick lookup) end before their first check, so their monitor never
    needs a thread: handing every monitor to one at once cost about a tenth of a no-op run's
    CPU (a wake-up and a context switch each; an A/B in one process). One timer thread per
    process keeps the due times in a heap; scheduling is a push, and wakes the timer only when
    the new monitor is due before every other. A monitor may start up to a grain early: its
    first check then finds nothing due yet and waits as it would have.
    """

    GRAIN_SECONDS = 0.05

    def __init__(self) -> None:
        self._due = threading.Condition()
        self._heap: list[tuple[float, int, _Monitor]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, monitor: "_Monitor", at: float) -> None:
        with self._due:
            heapq.heappush(self._heap, (at, next(self._order), monitor))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="spine-monitor-timer", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is monitor:
                self._due.notify()

    def _serve(self) -> None:
        while True:
            with self._due:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._due.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                # Everything due within the grain goes now, a little early: the timer wakes at
                # most about once a grain, however many runs start in it.
                horizon = time.monotonic() + self.GRAIN_SECONDS
                due = []
                while self._heap and self._heap[0][0] <= horizon:
                    due.append(heapq.heappop(self._heap)[2])
            for monitor in due:
                if monitor.armed:
                    _MONITORS.submit(monitor.run)


_MONITOR_TIMER = _MonitorTimer()


class _Monitor:
    """Renews the lease, watches for a cancel request, and enforces the timeout."""

    def __init__(self, ctx: RunContext, worker_id: str, target: int, timeout: float) -> None:
        self.ctx = ctx
        self.worker_id = worker_id
        self.target = target
        self.started = time.monotonic()
        self.timeout_at = self.started + timeout
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._armed = True

    def start(self) -> None:
        """Watch from the first check on: the sooner of a cancel poll and the timeout."""
        first = min(settings.SPINE_CANCEL_POLL_SECONDS, max(0.01, self.timeout_at - self.started))
        _MONITOR_TIMER.schedule(self, self.started + first)

    @property
    def armed(self) -> bool:
        """False once the handler has returned."""
        return not self._done.is_set()

    def disarm(self) -> None:
        """Called by the handler's thread when the handler returns: never interrupt after this."""
        with self._lock:
            self._armed = False
        self._done.set()

    def run(self) -> None:
        """Check, then wait for the next check, until the handler returns (the timer waited for
        the first one)."""
        poll = settings.SPINE_CANCEL_POLL_SECONDS
        heartbeat = settings.SPINE_HEARTBEAT_SECONDS
        next_renew = self.started + heartbeat
        try:
            while self.armed:
                now = time.monotonic()
                if now >= self.timeout_at:
                    self._stop("timeout", ExecutionTimeout)
                    return
                try:
                    reason = self._check_row()
                    if reason:
                        self._stop(reason, _STOP_ERRORS[reason])
                        return
                    if now >= next_renew:
                        renew_lease(
                            self.ctx.execution_id,
                            worker_id=self.worker_id,
                            attempt=self.ctx.attempt,
                            lease_expires_at=timezone.now()
                            + timedelta(seconds=settings.SPINE_LEASE_SECONDS),
                        )
                        next_renew = now + heartbeat
                except (OperationalError, InterfaceError) as exc:
                    # The database restarted or dropped us: reconnect on the next tick rather
                    # than stop heartbeating (which would hand a healthy run to the reconciler).
                    log.warning("execution.monitor_db_error", error=str(exc))
                    connection.close()
                self._done.wait(min(poll, max(0.01, self.timeout_at - time.monotonic())))
        except Exception:
            log.exception("execution.monitor_failed")
        finally:
            connection.close()

    def _check_row(self) -> str:
        row = (
            Execution.objects.filter(pk=self.ctx.execution_id)
            .values("status", "worker_id", "attempt", "cancel_requested_at")
            .first()
        )
        if row is None:
            return ""  # not visible from this connection (a test's transaction): nothing to do
        if (row["status"], row["worker_id"], row["attempt"]) != (
            Status.RUNNING,
            self.worker_id,
            self.ctx.attempt,
        ):
            return "lease_lost"
        return "cancelled" if row["cancel_requested_at"] else ""

    def _stop(self, reason: str, error: type[BaseException]) -> None:
        """Ask the handler to stop; interrupt it if it has not stopped after a grace period."""
        self.ctx._stop_reason = reason
        self.ctx._stop.set()
        log.info("execution.stop_requested", reason=reason)
        if self._done.wait(_INTERRUPT_GRACE_SECONDS):
            return
        with self._lock:
            if self._armed:
                raise_thread_exception(self.target, error)


class ErrorFields(TypedDict):
    """The ledger columns that describe a failed attempt."""

    error_type: str
    error_message: str
    error_traceback: str


def _error_fields(exc: BaseException) -> ErrorFields:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    tb = "".join(traceback.format_exception(exc))
    limit = settings.SPINE_TRACEBACK_LIMIT
    return {
        "error_type": type(exc).__name__[:200],
        "error_message": message[:4000],
        "error_traceback": tb if len(tb) <= limit else "…" + tb[-limit:],
    }


def _result_summary(result: Any) -> dict[str, Any]:
    """A small JSON-safe summary of what the handler returned."""
    if result is None:
        return {}
    if not isinstance(result, dict):
        result = {"value": result}
    text = json.dumps(result, default=str)
    if len(text) > _RESULT_LIMIT:
        return {"truncated": True, "preview": text[:_RESULT_LIMIT]}
    return json.loads(text)
