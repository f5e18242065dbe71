"""Pause and resume racing a held retry or a dispatch: nothing waits unsent on a running lane,
and nothing is sent on a paused one (PostgreSQL).

The retry reads the pause under a share lock on the lane's row, so a resume (which updates that
row) waits for the retry's commit and then finds the held row. Without the lock the resume could
look for held retries before the held row was committed, and the row would wait, unsent, for the
reconciler.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from executions import dispatcher, services
from executions.models import Execution, Status
from executions.runner import run_execution

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_resume_during_a_held_retry_sends_it(postgres, make_execution, recording_backend, actor):
    # Outside a test transaction the dispatch's after-commit submit runs at once: `queued`.
    execution = make_execution("diagnostics.sleep", {"seconds": 0, "fail_attempts": 1})
    assert Execution.objects.get(pk=execution.pk).status == Status.QUEUED
    services.set_lane_paused("normal", True, actor=actor)
    read_pause = dispatcher._lane_paused_locked

    def resume_lane():
        try:
            services.set_lane_paused("normal", False, actor=actor)
        finally:
            connection.close()  # this thread's own connection

    resume = threading.Thread(target=resume_lane)

    def read_then_resume_elsewhere(lane):
        paused = read_pause(lane)
        resume.start()  # another connection resumes while this retry is being held
        time.sleep(0.5)
        assert resume.is_alive()  # waiting for the lane row this transaction has locked
        return paused

    dispatcher._lane_paused_locked = read_then_resume_elsewhere
    try:
        assert run_execution(execution.id, worker_id="w1") == Status.QUEUED
    finally:
        dispatcher._lane_paused_locked = read_pause
    resume.join(timeout=10)

    execution = Execution.objects.get(pk=execution.pk)
    assert (execution.status, execution.backend_run_id) == (Status.QUEUED, "run-2")
    assert [kind for kind in execution.events.order_by("id").values_list("kind", flat=True)][
        -2:
    ] == ["retry_scheduled", "resubmitted"]
    assert execution.events.get(kind="retry_scheduled").data["held"] == "lane paused"


class _Rollback(Exception):
    pass


def dispatch_while_the_lane_changes(change_lane) -> Execution:
    """Dispatch while `change_lane()` commits in the middle of the dispatch's create.

    A first transaction holds an idempotency key uncommitted, so a second dispatch of that key
    waits inside its INSERT; the lane changes meanwhile; then the first rolls back and the
    second's INSERT goes through. Returns the second dispatch's execution, as it is now.
    """
    inserted, release, result = threading.Event(), threading.Event(), {}

    def hold_the_key():
        try:
            with transaction.atomic():
                dispatcher.dispatch(
                    "diagnostics.sleep", {"seconds": 0}, trigger_source="api", idempotency_key="K"
                )
                inserted.set()
                release.wait(10)
                raise _Rollback
        except _Rollback:
            pass
        finally:
            connection.close()

    def dispatch_the_key():
        try:
            result["dispatched"] = dispatcher.dispatch(
                "diagnostics.sleep", {"seconds": 0}, trigger_source="api", idempotency_key="K"
            )
        finally:
            connection.close()

    holder, waiter = (
        threading.Thread(target=hold_the_key),
        threading.Thread(target=dispatch_the_key),
    )
    holder.start()
    assert inserted.wait(5)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # its INSERT waits for the held key
    change_lane()
    release.set()
    holder.join(10)
    waiter.join(10)
    return Execution.objects.get(pk=result["dispatched"].execution.pk)


def test_a_resume_during_a_dispatch_still_sends_it(postgres, recording_backend, actor):
    # The pause is read after the row is committed: a resume that listed the lane's pending rows
    # before that commit is then seen as resumed.
    services.set_lane_paused("normal", True, actor=actor)
    execution = dispatch_while_the_lane_changes(
        lambda: services.set_lane_paused("normal", False, actor=actor)
    )
    assert execution.status == Status.QUEUED
    assert recording_backend.submitted == [(str(execution.id), "normal", 0.0)]


def test_a_pause_during_a_dispatch_holds_it(postgres, recording_backend, actor):
    execution = dispatch_while_the_lane_changes(
        lambda: services.set_lane_paused("normal", True, actor=actor)
    )
    assert execution.status == Status.PENDING
    assert recording_backend.submitted == []
