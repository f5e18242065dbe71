"""The reconciler: each kind of repair, the guards that leave live work alone, and --dry-run."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from dlq.models import DeadLetter
from executions import reconcile, runner
from executions.models import Execution, ExecutionEvent, Lane, Status
from executions.reconcile import Kind
from tests.conftest import RecordingBackend


class Backend(RecordingBackend):
    """Records submits and cancels in one ordered list of calls."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.health_status = "ok"

    def submit(self, execution_id, lane, delay_seconds):
        run_id = super().submit(execution_id, lane, delay_seconds)
        self.calls.append(("submit", str(execution_id)))
        return run_id

    def cancel(self, execution_id, backend_run_id):
        self.calls.append(("cancel", str(execution_id)))
        return False

    def health(self):
        return {"status": self.health_status}


@pytest.fixture
def backend(monkeypatch):
    backend = Backend()
    for module in ("executions.dispatcher", "executions.reconcile"):
        monkeypatch.setattr(f"{module}.get_backend", lambda: backend)
    return backend


def ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


def set_fields(execution, **fields):
    """Age a row for the test (bypasses the state machine on purpose)."""
    Execution.objects.filter(pk=execution.pk).update(**fields)


def kinds(execution):
    return list(
        ExecutionEvent.objects.filter(execution_id=execution.pk)
        .order_by("id")
        .values_list("kind", flat=True)
    )


@pytest.fixture
def lost_pending(make_execution, backend):
    execution = make_execution(params={"seconds": 0})
    set_fields(execution, created_at=ago(60))
    return execution


@pytest.fixture
def lost_queued(queued, backend):
    execution = queued(params={"seconds": 0})
    set_fields(execution, queued_at=ago(600))
    return execution


@pytest.fixture
def make_running(queued, backend):
    def make(lease_expired=True, **kwargs):
        execution = queued(params={"seconds": 0}, **kwargs)
        runner._claim(execution.id, "host:1:worker")
        if lease_expired:
            set_fields(execution, lease_expires_at=ago(5))
        execution.refresh_from_db()
        return execution

    return make


def test_pending_never_submitted_is_submitted(lost_pending, backend):
    report = reconcile.reconcile()

    lost_pending.refresh_from_db()
    assert lost_pending.status == Status.QUEUED
    assert backend.submitted == [(str(lost_pending.id), "normal", 0.0)]
    assert kinds(lost_pending) == ["created", "submitted"]
    event = ExecutionEvent.objects.get(execution=lost_pending, kind="submitted")
    assert (event.actor, event.from_status, event.to_status) == ("reconciler", "pending", "queued")
    assert dict(report.outcomes) == {"submit:submitted": 1}


def test_recent_pending_is_left_to_its_dispatcher(make_execution, backend):
    execution = make_execution(params={"seconds": 0})

    report = reconcile.reconcile()

    assert report.actions == []
    assert Execution.objects.get(pk=execution.pk).status == Status.PENDING
    assert backend.submitted == []


def test_pending_in_a_paused_lane_waits_for_resume(lost_pending, backend):
    Lane.objects.filter(name="normal").update(paused=True)

    report = reconcile.reconcile()

    assert report.actions == []
    assert Execution.objects.get(pk=lost_pending.pk).status == Status.PENDING
    Lane.objects.filter(name="normal").update(paused=False)
    assert [a.kind for a in reconcile.plan()] == [Kind.SUBMIT]


def test_queued_message_lost_by_the_broker_is_resent(lost_queued, backend):
    report = reconcile.reconcile()

    lost_queued.refresh_from_db()
    assert lost_queued.status == Status.QUEUED
    assert [s[0] for s in backend.submitted] == [str(lost_queued.id)] * 2
    assert lost_queued.backend_run_id == "run-2"
    assert kinds(lost_queued) == ["created", "submitted", "resubmitted"]
    assert dict(report.outcomes) == {"resend:resent": 1}
    assert reconcile.plan() == []  # resending restarted its grace period


def test_queued_within_grace_or_not_due_is_left_alone(queued, backend):
    fresh = queued(params={"seconds": 0})
    delayed = queued(params={"seconds": 0})
    set_fields(delayed, queued_at=ago(600), not_before=timezone.now() + timedelta(seconds=30))

    assert reconcile.plan() == []
    assert {e.status for e in Execution.objects.filter(pk__in=[fresh.pk, delayed.pk])} == {
        Status.QUEUED
    }


def test_expired_lease_cancels_at_the_backend_then_retries(make_running, backend):
    execution = make_running()

    report = reconcile.reconcile()

    execution.refresh_from_db()
    assert execution.status == Status.QUEUED
    assert execution.attempt == 1
    assert (execution.worker_id, execution.lease_expires_at) == ("", None)
    assert execution.error_type == "WorkerLost"
    assert backend.calls[-2:] == [("cancel", str(execution.id)), ("submit", str(execution.id))]
    event = ExecutionEvent.objects.get(execution=execution, kind="retry_scheduled")
    assert (event.actor, event.data["reason"], event.data["attempt"]) == (
        "reconciler",
        "worker_lost",
        1,
    )
    assert dict(report.outcomes) == {"worker_lost:retried": 1}


def test_expired_lease_at_max_attempts_dead_letters(make_running, backend):
    execution = make_running(max_attempts=1)

    reconcile.reconcile()

    execution.refresh_from_db()
    assert execution.status == Status.DEAD_LETTERED
    letter = DeadLetter.objects.get(execution=execution)
    assert (letter.reason, letter.attempts) == ("max_attempts", 1)
    assert letter.error_summary.startswith("WorkerLost: worker host:1:worker stopped")


def test_live_lease_is_left_alone(make_running, backend):
    execution = make_running(lease_expired=False)
    before = Execution.objects.filter(pk=execution.pk).values().get()

    report = reconcile.reconcile()

    assert report.actions == []
    assert Execution.objects.filter(pk=execution.pk).values().get() == before


def test_lease_renewed_after_planning_is_left_alone(make_running, backend):
    execution = make_running()
    planned_at = timezone.now()
    set_fields(execution, lease_expires_at=planned_at + timedelta(seconds=30))  # it came back

    status = runner.record_lost_attempt(
        Execution.objects.get(pk=execution.pk), actor=reconcile.Actor.system("t"), now=planned_at
    )

    assert status == Status.RUNNING
    assert Execution.objects.get(pk=execution.pk).status == Status.RUNNING


def test_cancel_request_not_honoured_is_finished(make_running, backend):
    execution = make_running(lease_expired=False)
    set_fields(execution, cancel_requested_at=ago(3600))

    report = reconcile.reconcile()

    execution.refresh_from_db()
    assert execution.status == Status.CANCELLED
    assert execution.finished_at is not None
    assert backend.calls[-1] == ("cancel", str(execution.id))
    assert kinds(execution)[-1] == "cancelled"
    assert dict(report.outcomes) == {"finish_cancel:cancelled": 1}


def test_cancel_requested_on_a_lost_run_is_finished_not_retried(make_running, backend):
    execution = make_running()
    set_fields(execution, cancel_requested_at=ago(1))

    assert [a.kind for a in reconcile.plan()] == [Kind.FINISH_CANCEL]
    reconcile.reconcile()

    assert Execution.objects.get(pk=execution.pk).status == Status.CANCELLED


def test_backend_down_leaves_pending_rows_untouched(lost_pending, backend):
    backend.health_status = "down"
    events_before = ExecutionEvent.objects.count()

    report = reconcile.reconcile()

    assert dict(report.outcomes) == {"submit:backend_down": 1}
    assert Execution.objects.get(pk=lost_pending.pk).status == Status.PENDING
    assert ExecutionEvent.objects.count() == events_before
    assert backend.submitted == []


def test_dry_run_prints_the_plan_and_changes_nothing(
    lost_pending, lost_queued, make_running, backend, capsys
):
    lost = make_running()
    cancelling = make_running(lease_expired=False)
    set_fields(cancelling, cancel_requested_at=ago(3600))
    rows_before = list(Execution.objects.order_by("id").values())
    events_before = ExecutionEvent.objects.count()
    calls_before = list(backend.calls)

    call_command("spine_reconcile", "--dry-run")

    out = capsys.readouterr().out
    assert list(Execution.objects.order_by("id").values()) == rows_before
    assert ExecutionEvent.objects.count() == events_before
    assert backend.calls == calls_before
    assert f"would submit        {lost_pending.id}" in out
    assert f"would resend        {lost_queued.id}" in out
    assert f"would worker_lost   {lost.id}" in out
    assert f"would finish_cancel {cancelling.id}" in out
    assert "planned submit=1, resend=1, worker_lost=1, finish_cancel=1 (dry run" in out


def test_command_reports_each_outcome_and_a_summary(lost_pending, backend, capsys):
    call_command("spine_reconcile")

    out = capsys.readouterr().out
    assert f"submitted      submit        {lost_pending.id}" in out
    assert "outcomes submit:submitted=1" in out


def test_queued_rows_behind_a_backlog_the_broker_holds_are_not_resent(lost_queued, backend):
    backend.queue_depths = lambda: {"normal": 1, "backfill": 0}
    assert reconcile.plan(depths=backend.queue_depths()) == []
    assert reconcile.reconcile().actions == []

    backend.queue_depths = lambda: {"normal": 0, "backfill": 0}  # fewer messages than rows
    assert dict(reconcile.reconcile().outcomes) == {"resend:resent": 1}
