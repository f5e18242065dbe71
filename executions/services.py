"""Operator actions on the ledger: cancel, retry, pause and resume lanes.

The API, the admin and the commands call these, so all three behave identically and every
action leaves an event with its actor, reason and request id.
"""

from uuid import UUID

import structlog
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from executions import dispatcher, metrics
from executions.backends import get_backend, withdraw
from executions.dispatcher import DispatchResult
from executions.errors import ExecutionNotFound, InvalidLane, InvalidTransition
from executions.models import (
    TERMINAL_STATUSES,
    Execution,
    Lane,
    LaneName,
    Status,
    TriggerSource,
)
from executions.transitions import Actor, record_event, transition, update_fields

log = structlog.get_logger(__name__)


def get_execution(execution_id: UUID | str) -> Execution:
    """The execution, or `ExecutionNotFound`."""
    try:
        return Execution.objects.get(pk=execution_id)
    except (Execution.DoesNotExist, ValueError):
        raise ExecutionNotFound(f"Execution {execution_id} does not exist.") from None


def cancel(execution_id: UUID | str, *, actor: Actor) -> Execution:
    """Cancel a pending or queued execution at once; ask a running one to stop.

    A running execution is cancelled by its runner within a few seconds of the request.
    """
    execution = get_execution(execution_id)
    if execution.status in (Status.PENDING, Status.QUEUED):
        try:
            transition(
                execution.id,
                frm=execution.status,
                to=Status.CANCELLED,
                kind="cancelled",
                actor=actor,
                cancel_requested_at=timezone.now(),
                cancel_requested_by=actor.user,
                cancel_reason=actor.reason,
                finished_at=timezone.now(),
            )
        except InvalidTransition:
            return cancel(execution_id, actor=actor)  # it moved on meanwhile: decide again
        metrics.EXECUTIONS_COMPLETED.labels(execution.pipeline, Status.CANCELLED).inc()
        if execution.backend_run_id:
            transaction.on_commit(
                lambda: withdraw(get_backend(), str(execution.id), execution.backend_run_id)
            )
    elif execution.status == Status.RUNNING:
        requested = update_fields(
            execution.id,
            kind="cancel_requested",
            actor=actor,
            where=Q(status=Status.RUNNING, cancel_requested_at__isnull=True),
            cancel_requested_at=timezone.now(),
            cancel_requested_by=actor.user,
            cancel_reason=actor.reason,
        )
        if not requested:
            current = get_execution(execution.id)
            if not (current.status == Status.RUNNING and current.cancel_requested_at):
                return cancel(execution_id, actor=actor)  # it finished meanwhile: decide again
            # a cancel was already requested: asking twice is not an error
    else:
        raise InvalidTransition(
            f"Execution {execution.id} is {execution.status}; only pending, queued or running "
            "executions can be cancelled.",
            details={"execution_id": str(execution.id), "status": execution.status},
        )
    return get_execution(execution.id)


def retry(execution_id: UUID | str, *, actor: Actor) -> DispatchResult:
    """Run a terminal execution again as a new execution whose parent is the old one.

    The new execution's trigger is `retry`; where the operator acted (api, admin, cli) is the
    `source` of the events.
    """
    execution = get_execution(execution_id)
    if execution.status not in TERMINAL_STATUSES:
        raise InvalidTransition(
            f"Execution {execution.id} is {execution.status}; only finished executions can be "
            "retried.",
            details={"execution_id": str(execution.id), "status": execution.status},
        )
    with transaction.atomic():
        result = dispatcher.dispatch(
            execution.pipeline,
            execution.params,
            lane=execution.lane,
            trigger_source=TriggerSource.RETRY,
            created_by=actor.user,
            request_id=actor.request_id,
            parent=execution,
            actor=actor,
        )
        record_event(
            execution.id,
            kind="retried",
            actor=actor,
            data={"new_execution_id": str(result.execution.id)},
        )
    return result


def set_lane_paused(lane: str, paused: bool, *, actor: Actor) -> Lane:
    """Pause or resume a lane. Resuming sends what the pause held.

    That is the lane's `pending` executions, and its retries that went back to `queued` while
    it was paused and so have no message (`dispatcher.requeue`, `backend_run_id` empty).
    """
    if lane not in LaneName.values:
        raise InvalidLane(f"Unknown lane {lane!r}; lanes are {', '.join(LaneName.values)}.")
    # changed_by is the AUTH_USER_MODEL's user; django-stubs type the foreign key as auth.User
    Lane.objects.update_or_create(  # type: ignore[misc]
        name=lane,
        defaults={
            "paused": paused,
            "changed_at": timezone.now(),
            "changed_by": actor.user,
            "reason": actor.reason,
        },
    )
    log.info("lane.paused" if paused else "lane.resumed", lane=lane, actor=actor.name)
    if not paused:
        held = Execution.objects.filter(lane=lane, status=Status.PENDING).order_by("created_at")
        for execution_id in held.values_list("id", flat=True).iterator():
            dispatcher.submit(execution_id, actor=actor)
        retries = Execution.objects.filter(lane=lane, status=Status.QUEUED, backend_run_id="")
        for execution_id in retries.order_by("not_before").values_list("id", flat=True).iterator():
            dispatcher.resend(execution_id, actor=actor, reason="lane resumed")
    return Lane.objects.get(name=lane)
