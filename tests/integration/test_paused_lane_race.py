"""A resume that races a retry being held on a paused lane still sends that retry (PostgreSQL).

The retry reads the pause under a share lock on the lane's row, so a resume (which updates that
row) waits for the retry's commit and then finds the held row. Without the lock the resume could
look for held retries before the held row was committed, and the row would wait, unsent, for the
reconciler.
"""

import threading
import time

import pytest
from django.db import connection

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
