"""Races settled by the database: the partial unique index and the compare-and-set claim."""

import threading

import pytest
from django.db import connections
from pydantic import BaseModel

from executions import dispatcher
from executions.errors import KeyBusy
from executions.models import Execution, ExecutionEvent, Status
from executions.registry import KeyPolicy, PipelineSpec, registry
from executions.runner import _claim
from executions.transitions import Actor, transition


class WeekParams(BaseModel):
    week: str


@pytest.fixture
def keyed():
    registry.register(
        PipelineSpec(
            name="test.race",
            handler=lambda params, ctx: None,
            params_model=WeekParams,
            logical_key="{week}",
            on_key_collision=KeyPolicy.REJECT,
        )
    )
    yield
    registry.unregister("test.race")


def run_in_threads(n, target):
    """Start `n` threads released together by a barrier; return what each returned or raised."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_dispatches_of_one_logical_key_one_wins(postgres, keyed, recording_backend):
    for attempt in range(5):  # several rounds: the race must be settled every time
        results = run_in_threads(
            2,
            lambda i, week=f"2025-11-{10 + attempt}": dispatcher.dispatch(
                "test.race", {"week": week}, trigger_source="api"
            ),
        )
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert len(losers) == 1 and isinstance(losers[0], KeyBusy), results
        assert losers[0].details["execution_id"] == str(winners[0].execution.id)
    assert Execution.objects.filter(pipeline="test.race").count() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatches_with_one_idempotency_key_create_one_execution(
    postgres, recording_backend
):
    results = run_in_threads(
        4,
        lambda i: dispatcher.dispatch(
            "diagnostics.sleep", {"seconds": 1}, trigger_source="api", idempotency_key="same"
        ),
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.execution.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert Execution.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_duplicate_delivery_is_claimed_exactly_once(postgres, recording_backend):
    execution = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").execution
    execution.refresh_from_db()
    assert execution.status == Status.QUEUED

    results = run_in_threads(4, lambda i: _claim(execution.id, f"worker-{i}"))

    claimed = [r for r in results if r is not None]
    assert len(claimed) == 1, results
    assert not any(isinstance(r, Exception) for r in results), results
    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == (Status.RUNNING, 1)
    assert ExecutionEvent.objects.filter(execution=execution, kind="started").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_from_one_status_one_wins(postgres, recording_backend):
    execution = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").execution
    targets = [Status.RUNNING, Status.CANCELLED, Status.RUNNING, Status.CANCELLED]

    results = run_in_threads(
        4,
        lambda i: transition(
            execution.id, frm=Status.QUEUED, to=targets[i], kind="race", actor=Actor.system("t")
        ),
    )

    assert sum(1 for r in results if r == Status.QUEUED) == 1, results
    assert ExecutionEvent.objects.filter(execution=execution, kind="race").count() == 1
