"""The runner: claim, outcomes, retries with growing backoff, dead letters, deadlines, leases."""

from datetime import timedelta

import pytest
from django.utils import timezone
from pydantic import BaseModel

from dlq.models import DeadLetter
from executions.errors import NotPublishedYet
from executions.models import Execution, Status
from executions.registry import RetryPolicy
from executions.runner import run_execution


def make_due(execution):
    """Skip the backoff wait: the retry is due now."""
    Execution.objects.filter(pk=execution.pk).update(not_before=timezone.now())


def kinds(execution):
    return list(execution.events.order_by("id").values_list("kind", flat=True))


@pytest.mark.django_db
def test_success_completes_with_the_result(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0})

    assert run_execution(execution.id, worker_id="w1") == Status.COMPLETED

    execution.refresh_from_db()
    assert execution.status == Status.COMPLETED
    assert execution.result == {"slept_seconds": 0.0, "attempt": 1}
    assert execution.attempt == 1
    assert execution.started_at <= execution.finished_at
    assert execution.lease_expires_at is None
    assert kinds(execution) == ["created", "submitted", "started", "completed"]


@pytest.mark.django_db
def test_retryable_failures_retry_with_growing_delays_then_complete(queued, recording_backend):
    execution = queued("diagnostics.sleep", {"seconds": 0, "fail_attempts": 2})

    assert run_execution(execution.id, worker_id="w1") == Status.QUEUED
    make_due(execution)
    assert run_execution(execution.id, worker_id="w1") == Status.QUEUED
    make_due(execution)
    assert run_execution(execution.id, worker_id="w1") == Status.COMPLETED

    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == (Status.COMPLETED, 3)
    assert (execution.error_type, execution.error_message) == ("", "")
    retries = list(execution.events.filter(kind="retry_scheduled").order_by("id"))
    assert [e.data["attempt"] for e in retries] == [1, 2]
    delays = [e.data["delay_seconds"] for e in retries]
    # backoff_base 1 s, doubling, at most 25% jitter taken off: [0.75, 1.0] then [1.5, 2.0]
    assert 0.75 <= delays[0] <= 1.0 < 1.5 <= delays[1] <= 2.0
    # Each retry was re-submitted to the backend with its delay.
    assert [round(d, 3) for _, _, d in recording_backend.submitted[1:]] == delays
    assert kinds(execution) == [
        "created",
        "submitted",
        "started",
        "retry_scheduled",
        "started",
        "retry_scheduled",
        "started",
        "completed",
    ]


@pytest.mark.django_db
def test_a_retry_is_not_claimed_before_it_is_due(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0, "fail_attempts": 1})
    run_execution(execution.id, worker_id="w1")

    assert run_execution(execution.id, worker_id="w1") is None  # delivered early: dropped

    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == (Status.QUEUED, 1)


@pytest.mark.django_db
def test_permanent_failure_fails_at_once(queued):
    execution = queued("diagnostics.sleep", {"permanent_failure": True})

    assert run_execution(execution.id, worker_id="w1") == Status.FAILED

    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == (Status.FAILED, 1)
    assert execution.error_type == "PermanentError"
    assert "fail permanently" in execution.error_message
    assert "Traceback" in execution.error_traceback
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db
def test_exhausted_retries_dead_letter_with_one_dead_letter_row(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0, "fail_attempts": 99})

    statuses = []
    for _ in range(3):
        statuses.append(run_execution(execution.id, worker_id="w1"))
        make_due(execution)

    assert statuses == [Status.QUEUED, Status.QUEUED, Status.DEAD_LETTERED]
    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == (Status.DEAD_LETTERED, 3)
    letter = DeadLetter.objects.get()
    assert (letter.execution_id, letter.reason, letter.attempts) == (
        execution.id,
        "max_attempts",
        3,
    )
    assert (
        letter.error_summary
        == "RetryableError: diagnostics.sleep failing attempt 3 of 99 on purpose"
    )
    assert letter.resolved_at is None
    assert run_execution(execution.id, worker_id="w1") is None  # terminal: nothing more runs
    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_unexpected_exception_is_retryable(queued, temp_pipeline):
    def boom(params, ctx):
        raise KeyError("surprise")

    temp_pipeline("test.boom", boom, retry=RetryPolicy(max_attempts=2))
    execution = queued("test.boom", {})

    assert run_execution(execution.id, worker_id="w1") == Status.QUEUED
    execution.refresh_from_db()
    assert (execution.error_type, execution.error_message) == ("KeyError", "'surprise'")


@pytest.mark.django_db
def test_timeout_interrupts_the_handler_and_retries(queued, temp_pipeline, settings):
    settings.SPINE_CANCEL_POLL_SECONDS = 0.05
    finished = []

    def stubborn(params, ctx):
        import time

        for _ in range(200):  # ignores ctx: must be interrupted
            time.sleep(0.05)
        finished.append(True)

    temp_pipeline("test.slow", stubborn, timeout_seconds=0.3, retry=RetryPolicy(max_attempts=2))
    execution = queued("test.slow", {})

    assert run_execution(execution.id, worker_id="w1") == Status.QUEUED

    execution.refresh_from_db()
    assert execution.error_type == "ExecutionTimeout"
    assert finished == []
    assert execution.events.get(kind="retry_scheduled").data["reason"] == "timeout"


class WeekParams(BaseModel):
    week: str


@pytest.mark.django_db
def test_not_published_yet_retries_past_max_attempts_until_the_deadline(queued, temp_pipeline):
    def not_yet(params, ctx):
        raise NotPublishedYet(f"week {params.week} is not published yet")

    temp_pipeline(
        "test.not_yet",
        not_yet,
        params_model=WeekParams,
        retry=RetryPolicy(max_attempts=1, backoff_base_seconds=1, backoff_max_seconds=1, jitter=0),
        deadline=timedelta(hours=1),
    )
    execution = queued("test.not_yet", {"week": "2025-11-17"})

    for _ in range(3):  # more attempts than max_attempts: the deadline governs
        assert run_execution(execution.id, worker_id="w1") == Status.QUEUED
        make_due(execution)

    Execution.objects.filter(pk=execution.pk).update(deadline_at=timezone.now())
    assert run_execution(execution.id, worker_id="w1") == Status.DEAD_LETTERED

    execution.refresh_from_db()
    assert execution.attempt == 4
    assert DeadLetter.objects.get().reason == "deadline_missed"


@pytest.mark.django_db
def test_an_expired_lease_is_taken_over_by_another_worker(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0})
    # Worker 1 claimed it and died: its lease expired.
    Execution.objects.filter(pk=execution.pk).update(
        status=Status.RUNNING,
        attempt=1,
        worker_id="dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert run_execution(execution.id, worker_id="w2") == Status.COMPLETED

    execution.refresh_from_db()
    assert (execution.attempt, execution.worker_id) == (2, "w2")
    assert "lease_takeover" in kinds(execution)


@pytest.mark.django_db
def test_a_live_lease_is_not_taken_over(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0})
    Execution.objects.filter(pk=execution.pk).update(
        status=Status.RUNNING,
        attempt=1,
        worker_id="alive",
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )

    assert run_execution(execution.id, worker_id="w2") is None

    execution.refresh_from_db()
    assert (execution.status, execution.attempt, execution.worker_id) == (
        Status.RUNNING,
        1,
        "alive",
    )


@pytest.mark.django_db
def test_outcome_of_a_run_that_lost_its_lease_is_dropped(queued, temp_pipeline):
    def hijacked(params, ctx):
        # While this handler runs, another worker takes the run over.
        Execution.objects.filter(pk=ctx.execution_id).update(worker_id="other", attempt=2)
        return {"ok": True}

    temp_pipeline("test.hijacked", hijacked)
    execution = queued("test.hijacked", {})

    assert run_execution(execution.id, worker_id="w1") == Status.RUNNING

    execution.refresh_from_db()
    assert (execution.status, execution.worker_id, execution.result) == (
        Status.RUNNING,
        "other",
        None,
    )


@pytest.mark.django_db
def test_params_that_no_longer_validate_fail_permanently(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0})
    Execution.objects.filter(pk=execution.pk).update(params={"seconds": "soon"})

    assert run_execution(execution.id, worker_id="w1") == Status.FAILED
    execution.refresh_from_db()
    assert execution.error_type == "InvalidParams"


@pytest.mark.django_db
def test_retry_policy_delays_grow_and_are_capped():
    policy = RetryPolicy(backoff_base_seconds=2, backoff_max_seconds=10, jitter=0)
    assert [policy.delay_for(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


@pytest.mark.django_db
def test_an_expired_lease_on_the_last_attempt_is_left_to_the_reconciler(queued):
    execution = queued("diagnostics.sleep", {"seconds": 0})
    Execution.objects.filter(pk=execution.pk).update(
        status=Status.RUNNING,
        attempt=3,
        worker_id="dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert run_execution(execution.id, worker_id="w2") is None

    execution.refresh_from_db()
    assert (execution.status, execution.attempt, execution.worker_id) == (Status.RUNNING, 3, "dead")


@pytest.mark.django_db
def test_a_retry_on_a_paused_lane_waits_unsent_until_the_lane_resumes(
    queued, recording_backend, actor
):
    from executions import reconcile, services

    execution = queued("diagnostics.sleep", {"seconds": 0, "fail_attempts": 1})
    services.set_lane_paused("normal", True, actor=actor)

    assert run_execution(execution.id, worker_id="w1") == Status.QUEUED

    execution.refresh_from_db()
    assert (execution.status, execution.attempt, execution.backend_run_id) == (
        Status.QUEUED,
        1,
        "",
    )
    assert recording_backend.submitted == [(str(execution.id), "normal", 0.0)]  # the first send
    retry = execution.events.get(kind="retry_scheduled")
    assert (retry.data["sent"], retry.data["held"]) == (False, "lane paused")
    later = timezone.now() + timedelta(hours=1)  # long past every grace period
    assert [a.execution_id for a in reconcile.plan(now=later)] == []

    services.set_lane_paused("normal", False, actor=actor)

    execution.refresh_from_db()
    assert execution.status == Status.QUEUED
    assert execution.backend_run_id == "run-2"
    assert [(i, lane) for i, lane, _ in recording_backend.submitted] == [
        (str(execution.id), "normal")
    ] * 2
    assert 0.0 < recording_backend.submitted[1][2] <= 1.0  # what is left of the backoff
    assert kinds(execution)[-2:] == ["retry_scheduled", "resubmitted"]
    make_due(execution)
    assert run_execution(execution.id, worker_id="w1") == Status.COMPLETED
