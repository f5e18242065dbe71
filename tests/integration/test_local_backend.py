"""End to end on the embedded `local` backend: real threads, a real (committed) database."""

import time

import pytest

from executions import dispatcher, services
from executions.backends.local import LocalBackend
from executions.errors import InvalidTransition
from executions.models import TERMINAL_STATUSES, Execution, ExecutionEvent, Status
from executions.transitions import Actor


@pytest.fixture
def local_backend(monkeypatch, settings):
    settings.SPINE_CANCEL_POLL_SECONDS = 0.1
    backend = LocalBackend(workers=4)
    monkeypatch.setattr("executions.dispatcher.get_backend", lambda: backend)
    monkeypatch.setattr("executions.services.get_backend", lambda: backend)
    yield backend
    backend.drain(timeout=10)


def wait_for(execution_id, statuses=TERMINAL_STATUSES, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = Execution.objects.get(pk=execution_id)
        if execution.status in statuses:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} still {Execution.objects.get(pk=execution_id).status}")


def operator(reason="test"):
    return Actor(name="alice", source="api", reason=reason, request_id="req-9")


@pytest.mark.django_db(transaction=True)
def test_dispatch_runs_to_completion(local_backend):
    execution = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 0.1}, trigger_source="api"
    ).execution
    done = wait_for(execution.id)
    assert done.status == Status.COMPLETED
    assert done.backend == "local"
    assert done.result == {"slept_seconds": 0.1, "attempt": 1}


@pytest.mark.django_db(transaction=True)
def test_retries_then_completes_on_attempt_three(local_backend):
    execution = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 0, "fail_attempts": 2}, trigger_source="api"
    ).execution
    done = wait_for(execution.id, timeout=20)
    assert (done.status, done.attempt) == (Status.COMPLETED, 3)
    delays = [
        e.data["delay_seconds"] for e in done.events.filter(kind="retry_scheduled").order_by("id")
    ]
    assert len(delays) == 2 and delays[0] < delays[1]


@pytest.mark.django_db(transaction=True)
def test_cancel_a_running_execution_stops_the_handler_within_five_seconds(local_backend):
    execution = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 60}, trigger_source="api"
    ).execution
    wait_for(execution.id, statuses=[Status.RUNNING])

    started = time.monotonic()
    services.cancel(execution.id, actor=operator("no longer needed"))
    done = wait_for(execution.id, timeout=5)
    elapsed = time.monotonic() - started

    assert done.status == Status.CANCELLED
    assert elapsed < 5
    assert done.cancel_reason == "no longer needed"
    assert local_backend.drain(timeout=5)  # the handler really stopped: the pool is idle
    request = done.events.get(kind="cancel_requested")
    assert (request.actor, request.reason, request.request_id) == (
        "alice",
        "no longer needed",
        "req-9",
    )
    assert done.events.get(kind="cancelled").from_status == Status.RUNNING


@pytest.mark.django_db(transaction=True)
def test_cancel_interrupts_a_handler_that_ignores_its_context(local_backend, temp_pipeline):
    stopped = []

    def stubborn(params, ctx):
        try:
            for _ in range(600):
                time.sleep(0.05)
        finally:
            stopped.append(True)

    temp_pipeline("test.stubborn", stubborn)
    execution = dispatcher.dispatch("test.stubborn", {}, trigger_source="api").execution
    wait_for(execution.id, statuses=[Status.RUNNING])

    services.cancel(execution.id, actor=operator())
    done = wait_for(execution.id, timeout=5)

    assert done.status == Status.CANCELLED
    assert stopped == [True]


@pytest.mark.django_db(transaction=True)
def test_cancel_queued_execution_is_immediate_and_it_never_runs(local_backend, actor):
    services.set_lane_paused("normal", True, actor=actor)
    execution = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 0}, trigger_source="api"
    ).execution
    services.cancel(execution.id, actor=operator())
    services.set_lane_paused("normal", False, actor=actor)

    execution.refresh_from_db()
    assert execution.status == Status.CANCELLED
    assert execution.attempt == 0
    assert list(execution.events.values_list("kind", flat=True).order_by("id")) == [
        "created",
        "cancelled",
    ]


@pytest.mark.django_db(transaction=True)
def test_cancel_of_a_finished_execution_is_refused_and_changes_nothing(local_backend):
    execution = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").execution
    done = wait_for(execution.id)
    events = ExecutionEvent.objects.count()

    with pytest.raises(InvalidTransition):
        services.cancel(done.id, actor=operator())

    after = Execution.objects.get(pk=done.id)
    assert (after.status, after.cancel_requested_at) == (Status.COMPLETED, None)
    assert ExecutionEvent.objects.count() == events


@pytest.mark.django_db(transaction=True)
def test_operator_retry_creates_a_child_and_leaves_the_old_one(local_backend):
    failed = dispatcher.dispatch(
        "diagnostics.sleep", {"permanent_failure": True}, trigger_source="api"
    ).execution
    wait_for(failed.id)

    result = services.retry(failed.id, actor=operator("fixed upstream"))

    child = result.execution
    assert (child.parent_id, child.root_id, child.trigger_source) == (failed.id, failed.id, "retry")
    assert Execution.objects.get(pk=failed.id).status == Status.FAILED
    retried = ExecutionEvent.objects.get(execution_id=failed.id, kind="retried")
    assert retried.data == {"new_execution_id": str(child.id)}
    assert retried.reason == "fixed upstream"
    assert wait_for(child.id).status == Status.FAILED  # same input, same permanent failure


@pytest.mark.django_db(transaction=True)
def test_retry_of_an_active_execution_is_refused(local_backend, actor):
    services.set_lane_paused("normal", True, actor=actor)
    execution = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").execution
    with pytest.raises(InvalidTransition):
        services.retry(execution.id, actor=operator())
    assert Execution.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_queue_depths_and_health(local_backend):
    assert local_backend.health() == {"status": "ok", "backend": "local", "workers": 4}
    local_backend.submit("00000000-0000-0000-0000-000000000000", "backfill", 30)
    assert local_backend.queue_depths() == {"backfill": 1}
    assert local_backend.cancel("00000000-0000-0000-0000-000000000000", "") is True
    assert local_backend.queue_depths() == {}


def cancelled_count(pipeline):
    from executions import metrics

    return metrics.EXECUTIONS_COMPLETED.labels(pipeline, "cancelled")._value.get()


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_pending_execution_counts_it_as_cancelled(local_backend, actor):
    services.set_lane_paused("normal", True, actor=actor)
    execution = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").execution
    before = cancelled_count("diagnostics.noop")

    services.cancel(execution.id, actor=operator())

    assert cancelled_count("diagnostics.noop") == before + 1
