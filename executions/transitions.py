"""The state machine: one table of allowed transitions and the one function that applies them.

Every status change is a compare-and-set `UPDATE … WHERE id = %s AND status = %s` plus its event
row, in one transaction. A refused change raises `InvalidTransition` and changes nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q

from executions.errors import ExecutionNotFound, InvalidTransition
from executions.models import Execution, ExecutionEvent, Status

S = Status

# from-status -> the statuses it may move to. `running -> running` is a lease takeover (a dead
# worker's run claimed again); `running -> queued` is a retry with backoff.
ALLOWED: Mapping[str, frozenset[str]] = {
    S.PENDING: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset(
        {S.COMPLETED, S.FAILED, S.DEAD_LETTERED, S.CANCELLED, S.QUEUED, S.RUNNING}
    ),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.DEAD_LETTERED: frozenset(),
    S.CANCELLED: frozenset(),
}

# A few optimistic re-reads are enough: a row only moves forward, so a race settles at once.
_MAX_CAS_TRIES = 4


@dataclass(frozen=True)
class Actor:
    """Who caused an event: a user, or a named system component."""

    name: str
    user: AbstractBaseUser | None = None
    source: str = ""
    request_id: str = ""
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def system(cls, component: str, **kwargs: Any) -> "Actor":
        return cls(name=component, source="system", **kwargs)

    @classmethod
    def for_user(cls, user: AbstractBaseUser | None, *, source: str, **kwargs: Any) -> "Actor":
        if user is None or not user.is_authenticated:
            return cls(name="anonymous", source=source, **kwargs)
        return cls(name=user.get_username(), user=user, source=source, **kwargs)


def is_allowed(from_status: str, to_status: str) -> bool:
    """True when the table allows moving from `from_status` to `to_status`."""
    return to_status in ALLOWED.get(from_status, frozenset())


def transition(
    execution_id: UUID | str,
    *,
    to: str,
    kind: str,
    actor: Actor,
    frm: str | None = None,
    where: Q | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> str:
    """Move one execution to `to`, set `fields`, write the event; return the from-status.

    With `frm`, the update applies only from that status (and `where`, if given); without it, the
    current status is read and the update is conditional on it, re-read if another writer won.
    """
    if frm is not None and not is_allowed(frm, to):
        raise InvalidTransition(
            f"An execution cannot move from {frm} to {to}.",
            details={"from": frm, "to": to},
        )
    for _ in range(_MAX_CAS_TRIES):
        current = frm if frm is not None else _current_status(execution_id)
        if not is_allowed(current, to):
            raise InvalidTransition(
                f"Execution {execution_id} is {current}; it cannot move to {to}.",
                details={"execution_id": str(execution_id), "status": current, "to": to},
            )
        with transaction.atomic():
            rows = Execution.objects.filter(pk=execution_id, status=current)
            if where is not None:
                rows = rows.filter(where)
            if rows.update(status=to, **fields) == 1:
                _write_event(execution_id, kind, actor, current, to, data)
                return current
        if frm is not None:
            break
    now_status = _current_status(execution_id)
    raise InvalidTransition(
        f"Execution {execution_id} is {now_status}; it cannot move to {to} here.",
        details={"execution_id": str(execution_id), "status": now_status, "to": to},
    )


def update_fields(
    execution_id: UUID | str,
    *,
    kind: str,
    actor: Actor,
    where: Q | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Set non-status fields as a conditional update with its event; False if `where` failed."""
    with transaction.atomic():
        rows = Execution.objects.filter(pk=execution_id)
        if where is not None:
            rows = rows.filter(where)
        if rows.update(**fields) != 1:
            return False
        _write_event(execution_id, kind, actor, "", "", data)
    return True


def record_event(
    execution_id: UUID | str, *, kind: str, actor: Actor, data: dict[str, Any] | None = None
) -> ExecutionEvent:
    """Write an event that changes no field (an operator action, a failed submit)."""
    return _write_event(execution_id, kind, actor, "", "", data)


def renew_lease(execution_id: UUID | str, *, worker_id: str, attempt: int, **fields: Any) -> bool:
    """Extend a running execution's lease if this worker still holds it (no event: a heartbeat)."""
    return (
        Execution.objects.filter(
            pk=execution_id, status=S.RUNNING, worker_id=worker_id, attempt=attempt
        ).update(**fields)
        == 1
    )


def _current_status(execution_id: UUID | str) -> str:
    status = Execution.objects.filter(pk=execution_id).values_list("status", flat=True).first()
    if status is None:
        raise ExecutionNotFound(f"Execution {execution_id} does not exist.")
    return status


def _write_event(execution_id, kind, actor: Actor, from_status, to_status, data):
    return ExecutionEvent.objects.create(
        execution_id=execution_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor.name[:150],
        actor_user=actor.user,
        source=actor.source,
        reason=actor.reason,
        request_id=actor.request_id,
        data={**actor.data, **(data or {})},
    )
