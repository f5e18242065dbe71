"""The state machine: every allowed transition applies with its event; every other is refused."""

import itertools
from uuid import UUID

import pytest

from executions.errors import InvalidTransition
from executions.models import Execution, ExecutionEvent, Status
from executions.transitions import ALLOWED, is_allowed, transition

ALL = list(Status.values)
ALLOWED_PAIRS = [(f, t) for f in ALL for t in sorted(ALLOWED[f])]
REFUSED_PAIRS = [(f, t) for f, t in itertools.product(ALL, ALL) if not is_allowed(f, t)]


def force_status(execution, status):
    """Put a row into `status` for the test (bypasses the state machine on purpose)."""
    Execution.objects.filter(pk=execution.pk).update(status=status)


def test_table_matches_the_spec():
    assert dict(ALLOWED) == {
        "pending": {"queued", "cancelled"},
        "queued": {"running", "cancelled"},
        "running": {"completed", "failed", "dead_lettered", "cancelled", "queued", "running"},
        "completed": set(),
        "failed": set(),
        "dead_lettered": set(),
        "cancelled": set(),
    }
    assert len(ALLOWED_PAIRS) == 10
    assert len(REFUSED_PAIRS) == 39


@pytest.mark.parametrize(("frm", "to"), ALLOWED_PAIRS)
def test_allowed_transition_applies_and_writes_one_event(make_execution, actor, frm, to):
    execution = make_execution()
    force_status(execution, frm)
    before = ExecutionEvent.objects.filter(execution=execution).count()

    returned = transition(execution.id, to=to, kind="test", actor=actor, worker_id="w-1")

    execution.refresh_from_db()
    assert returned == frm
    assert execution.status == to
    assert execution.worker_id == "w-1"
    events = list(ExecutionEvent.objects.filter(execution=execution).order_by("id"))
    assert len(events) == before + 1
    assert (events[-1].kind, events[-1].from_status, events[-1].to_status) == ("test", frm, to)
    assert (events[-1].actor, events[-1].source) == ("test", "system")


@pytest.mark.parametrize(("frm", "to"), REFUSED_PAIRS)
def test_refused_transition_changes_nothing(make_execution, actor, frm, to):
    execution = make_execution()
    force_status(execution, frm)
    snapshot = Execution.objects.filter(pk=execution.pk).values().get()
    events_before = ExecutionEvent.objects.count()

    with pytest.raises(InvalidTransition) as excinfo:
        transition(execution.id, to=to, kind="test", actor=actor, worker_id="w-1")

    assert excinfo.value.http_status == 409
    assert excinfo.value.details["status"] == frm
    assert Execution.objects.filter(pk=execution.pk).values().get() == snapshot
    assert ExecutionEvent.objects.count() == events_before


@pytest.mark.parametrize(("frm", "to"), REFUSED_PAIRS)
def test_refused_with_explicit_from_status_changes_nothing(make_execution, actor, frm, to):
    execution = make_execution()
    force_status(execution, frm)
    snapshot = Execution.objects.filter(pk=execution.pk).values().get()

    with pytest.raises(InvalidTransition):
        transition(execution.id, frm=frm, to=to, kind="test", actor=actor)

    assert Execution.objects.filter(pk=execution.pk).values().get() == snapshot


def test_compare_and_set_refuses_a_stale_from_status(make_execution, actor):
    execution = make_execution()
    force_status(execution, Status.RUNNING)
    events_before = ExecutionEvent.objects.count()

    # A writer that still believes the row is queued loses: the UPDATE matches no row.
    with pytest.raises(InvalidTransition):
        transition(execution.id, frm=Status.QUEUED, to=Status.RUNNING, kind="started", actor=actor)

    execution.refresh_from_db()
    assert execution.status == Status.RUNNING
    assert ExecutionEvent.objects.count() == events_before


def test_extra_condition_guards_the_update(make_execution, actor):
    from django.db.models import Q

    execution = make_execution()
    force_status(execution, Status.RUNNING)
    Execution.objects.filter(pk=execution.pk).update(worker_id="owner")

    with pytest.raises(InvalidTransition):
        transition(
            execution.id,
            frm=Status.RUNNING,
            to=Status.COMPLETED,
            kind="completed",
            actor=actor,
            where=Q(worker_id="someone-else"),
        )
    execution.refresh_from_db()
    assert execution.status == Status.RUNNING


def test_terminal_statuses_never_change(make_execution, actor):
    for terminal in ("completed", "failed", "dead_lettered", "cancelled"):
        execution = make_execution()
        force_status(execution, terminal)
        for to in ALL:
            with pytest.raises(InvalidTransition):
                transition(execution.id, to=to, kind="test", actor=actor)
        execution.refresh_from_db()
        assert execution.status == terminal


@pytest.mark.parametrize("durable", [True, False])
def test_cas_returns_exactly_the_columns_asked_for(make_execution, actor, durable):
    from executions.transitions import cas, cas_fetch

    execution = make_execution()  # pending: a db test never commits, so nothing submitted it
    queued = cas(
        execution.id,
        frm=Status.PENDING,
        to=Status.QUEUED,
        kind="submitted",
        actor=actor,
        values={"backend_run_id": "run-1"},
        returning=("id", "status", "backend_run_id"),
        durable=durable,
    )
    # as the database gives them: a UUID on PostgreSQL, its hex on SQLite
    assert (UUID(str(queued[0])), *queued[1:]) == (execution.id, Status.QUEUED, "run-1")
    running = cas_fetch(
        execution.id,
        frm=Status.QUEUED,
        to=Status.RUNNING,
        kind="started",
        actor=actor,
        values={"worker_id": "w"},
        durable=durable,
    )
    assert (running.pk, running.status, running.worker_id) == (execution.id, Status.RUNNING, "w")
    assert running.backend_run_id == "run-1"
