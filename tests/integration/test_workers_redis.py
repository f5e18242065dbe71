"""Real `spine_worker` processes on PostgreSQL and Redis (SPEC §4.4–§4.6, §12)."""

import json
import subprocess
import sys
import time

import pytest

from executions import reconcile, services
from executions.models import Execution, ExecutionEvent, Status
from executions.transitions import Actor
from tests.integration.conftest import (
    LEASE_SECONDS,
    QUEUED_GRACE,
    RECONCILE_INTERVAL,
    ROOT,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_worker_runs_retries_and_fails_end_to_end(redis_stack):
    stack = redis_stack
    stack.worker("normal", threads=2)
    ok = [stack.dispatch(params={"seconds": 0.1}) for _ in range(3)]
    flaky = stack.dispatch(params={"seconds": 0, "fail_attempts": 1})
    broken = stack.dispatch(params={"permanent_failure": True})

    stack.wait_all_terminal([e.id for e in [*ok, flaky, broken]], timeout=45)

    assert stack.status_counts([e.id for e in ok]) == {"completed": 3}
    flaky = Execution.objects.get(pk=flaky.pk)
    assert (flaky.status, flaky.attempt, flaky.result) == (
        "completed",
        2,
        {"slept_seconds": 0.0, "attempt": 2},
    )
    # The retry went through the lane's delay queue and waited for its backoff.
    assert stack.event_kinds(flaky.id) == [
        "created",
        "submitted",
        "started",
        "retry_scheduled",
        "started",
        "completed",
    ]
    retry = ExecutionEvent.objects.get(execution=flaky, kind="retry_scheduled")
    second_start = ExecutionEvent.objects.filter(execution=flaky, kind="started").last()
    assert (second_start.at - retry.at).total_seconds() >= retry.data["delay_seconds"] - 0.05
    broken = Execution.objects.get(pk=broken.pk)
    assert (broken.status, broken.attempt, broken.error_type) == ("failed", 1, "PermanentError")
    assert stack.backend.queue_depths() == {"normal": 0, "backfill": 0}


def test_queue_depths_count_ready_and_delayed_messages(redis_stack):
    stack = redis_stack  # no worker: messages wait
    stack.dispatch(params={"seconds": 0})
    stack.dispatch(params={"seconds": 0}, lane="backfill")
    stack.dispatch(params={"seconds": 0}, lane="backfill")
    stack.backend.submit("00000000-0000-0000-0000-000000000000", "backfill", 60)

    assert stack.backend.queue_depths() == {"normal": 1, "backfill": 3}
    assert stack.backend.health()["status"] == "ok"


def test_spine_submit_wait_against_a_worker(redis_stack):
    stack = redis_stack
    stack.worker("normal", threads=1)

    result = subprocess.run(
        [sys.executable, "manage.py", "spine_submit", "diagnostics.sleep"]
        + ["--params", '{"seconds": 0.2}', "--wait", "--timeout", "45"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr + stack.logs()
    execution_id, _, body = result.stdout.partition("\n")
    final = json.loads(body)
    assert final["id"] == execution_id
    assert (final["status"], final["attempt"], final["result"]) == (
        "completed",
        1,
        {"slept_seconds": 0.2, "attempt": 1},
    )
    assert Execution.objects.get(pk=execution_id).backend == "dramatiq"


def test_duplicate_delivery_claims_once(redis_stack):
    stack = redis_stack
    stack.worker("normal", threads=4)
    execution = stack.dispatch(params={"seconds": 1.0})
    for _ in range(3):  # the same message three more times, while it waits and while it runs
        stack.backend.submit(str(execution.id), "normal", 0)
    stack.wait_status(execution.id, Status.RUNNING)
    stack.backend.submit(str(execution.id), "normal", 0)

    stack.wait_status(execution.id, Status.COMPLETED)
    stack.backend.submit(str(execution.id), "normal", 0)  # and once after it finished
    wait_for(
        lambda: stack.backend.queue_depths()["normal"] == 0, timeout=10, what="duplicates drained"
    )
    time.sleep(0.5)  # let the last duplicate's claim be refused

    execution.refresh_from_db()
    assert execution.attempt == 1
    assert stack.event_kinds(execution.id) == ["created", "submitted", "started", "completed"]


def test_cancel_a_running_sleep_within_5_seconds(redis_stack):
    stack = redis_stack
    stack.worker("normal", threads=1)  # one thread: the next run proves the handler let go
    execution = stack.dispatch(params={"seconds": 60})
    stack.wait_status(execution.id, Status.RUNNING, timeout=30)

    requested = time.monotonic()
    services.cancel(execution.id, actor=Actor.system("test", reason="operator said so"))
    cancelled = stack.wait_status(execution.id, Status.CANCELLED, timeout=5)
    elapsed = time.monotonic() - requested

    assert elapsed < 5
    assert (cancelled.finished_at - cancelled.cancel_requested_at).total_seconds() < 5
    event = ExecutionEvent.objects.get(execution=execution, kind="cancelled")
    assert (event.actor, event.from_status) == ("runner", "running")  # its own runner stopped it
    follow_up = stack.dispatch(params={"seconds": 0})
    assert stack.wait_status(follow_up.id, Status.COMPLETED, timeout=10).attempt == 1


def test_broker_down_at_submit_leaves_pending_then_reconciler_submits(redis_stack, monkeypatch):
    from dramatiq.brokers.redis import RedisBroker

    from executions.backends.dramatiq import DramatiqBackend

    stack = redis_stack
    down = DramatiqBackend(
        broker=RedisBroker(url="redis://127.0.0.1:1/0", middleware=[]), queue_prefix=stack.prefix
    )
    monkeypatch.setattr("executions.dispatcher.get_backend", lambda: down)
    execution = stack.dispatch(params={"seconds": 0})

    execution.refresh_from_db()
    assert execution.status == Status.PENDING
    failed = ExecutionEvent.objects.get(execution=execution, kind="submit_failed")
    assert failed.data["error"].startswith("ConnectionError")

    monkeypatch.setattr("executions.dispatcher.get_backend", lambda: stack.backend)
    stack.worker("normal", threads=1)
    stack.reconciler()
    done = stack.wait_status(execution.id, Status.COMPLETED, timeout=30)
    assert done.attempt == 1
    submitted = ExecutionEvent.objects.get(execution=execution, kind="submitted")
    assert submitted.actor == "reconciler"


def test_process_dying_between_commit_and_enqueue_loses_nothing(redis_stack):
    stack = redis_stack
    # A real process that commits the execution and dies before its after-commit send.
    script = (
        "import os\n"
        "from executions import dispatcher\n"
        "dispatcher._submit_pending = lambda *a, **k: os._exit(9)\n"
        "e = dispatcher.dispatch('diagnostics.sleep', {'seconds': 0}, trigger_source='cli')\n"
    )
    died = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == 9, died.stdout + died.stderr
    execution = Execution.objects.get()
    assert execution.status == Status.PENDING
    assert stack.event_kinds(execution.id) == ["created"]

    stack.worker("normal", threads=1)
    stack.reconciler()

    done = stack.wait_status(execution.id, Status.COMPLETED, timeout=30)
    assert done.attempt == 1
    assert stack.event_kinds(execution.id) == ["created", "submitted", "started", "completed"]


def test_redis_flushed_mid_run_loses_nothing(redis_stack):
    stack = redis_stack
    stack.worker("normal", threads=4)
    ids = [stack.dispatch(params={"seconds": 0.5}).id for _ in range(30)]
    wait_for(
        lambda: Execution.objects.filter(pk__in=ids, status=Status.COMPLETED).count() >= 4,
        timeout=30,
        what="a few executions to finish",
        stack=stack,
    )

    stack.redis.flushdb()  # every queued message, ack set and heartbeat is gone
    lost = Execution.objects.filter(pk__in=ids, status=Status.QUEUED).count()
    stack.reconciler()

    stack.wait_all_terminal(ids, timeout=LEASE_SECONDS + RECONCILE_INTERVAL + QUEUED_GRACE + 40)
    assert lost > 0
    assert stack.status_counts(ids) == {"completed": 30}
    assert ExecutionEvent.objects.filter(execution_id__in=ids, kind="completed").count() == 30
    # the rows whose messages were gone were re-sent (those a live worker had already prefetched
    # into memory ran without one), and none ran twice
    assert ExecutionEvent.objects.filter(execution_id__in=ids, kind="resubmitted").exists()
    assert ExecutionEvent.objects.filter(execution_id__in=ids, kind="started").count() == 30


@pytest.mark.slow
def test_kill9_worker_with_100_in_flight_loses_nothing(redis_stack):
    stack = redis_stack
    ids = [stack.dispatch(params={"seconds": 1.0}).id for _ in range(120)]
    first = stack.worker("normal", processes=2, threads=4)
    wait_for(
        lambda: Execution.objects.filter(pk__in=ids, status=Status.RUNNING).count() >= 8,
        timeout=30,
        what="8 executions running",
        stack=stack,
    )

    first.kill9()
    killed_at = time.monotonic()
    in_flight = Execution.objects.filter(pk__in=ids, status__in=["queued", "running"]).count()
    were_running = set(
        Execution.objects.filter(pk__in=ids, status=Status.RUNNING).values_list("id", flat=True)
    )
    stack.worker("normal", processes=2, threads=4)
    stack.reconciler()

    budget = LEASE_SECONDS + RECONCILE_INTERVAL + 30
    stack.wait_all_terminal(ids, timeout=budget)
    took = time.monotonic() - killed_at
    print(f"\nkill -9 with {in_flight} in flight: all 120 finished {took:.1f}s after the kill")

    assert in_flight >= 100
    assert stack.status_counts(ids) == {"completed": 120}
    # each counted once: one terminal event each, and the killed runs' attempts were counted
    assert ExecutionEvent.objects.filter(execution_id__in=ids, kind="completed").count() == 120
    lost = ExecutionEvent.objects.filter(
        execution_id__in=were_running, kind="retry_scheduled", data__reason="worker_lost"
    )
    assert lost.count() == len(were_running)
    assert set(Execution.objects.filter(pk__in=were_running).values_list("attempt", flat=True)) == {
        2
    }


@pytest.mark.slow
def test_backfill_flood_does_not_delay_normal(redis_stack, settings):
    stack = redis_stack
    settings.SPINE_LANE_LIMITS = {"normal": 500, "backfill": 2000}
    settings.SPINE_MAX_PENDING = 5000
    stack.worker("normal", threads=2)
    stack.worker("backfill", threads=2)

    def latency() -> float:
        started = time.monotonic()
        execution = stack.dispatch("diagnostics.noop")
        stack.wait_status(execution.id, Status.COMPLETED, timeout=30)
        return time.monotonic() - started

    latency()  # the worker is up
    baseline = sorted(latency() for _ in range(5))
    flood = [stack.dispatch(params={"seconds": 0.5}, lane="backfill").id for _ in range(1000)]
    during = sorted(latency() for _ in range(5))
    depth = stack.backend.queue_depths()["backfill"]  # still waiting after the measurement
    print(
        f"\nnormal latency: baseline median {baseline[2]:.3f}s max {baseline[-1]:.3f}s; "
        f"with {len(flood)} backfill queued ({depth} waiting): median {during[2]:.3f}s "
        f"max {during[-1]:.3f}s"
    )

    assert depth > 500  # the flood really was waiting while normal ran
    assert during[2] <= baseline[-1] + 0.5
    assert during[-1] <= baseline[-1] + 1.5


def test_reconciler_resends_only_what_the_broker_lost(redis_stack):
    stack = redis_stack  # no worker: messages wait
    execution = stack.dispatch(params={"seconds": 0})
    Execution.objects.filter(pk=execution.pk).update(
        queued_at=Execution.objects.get(pk=execution.pk).queued_at.replace(year=2000)
    )
    assert reconcile.plan(depths=stack.backend.queue_depths()) == []  # still held: waiting

    stack.redis.flushdb()
    before = Execution.objects.filter(pk=execution.pk).values().get()
    report = reconcile.reconcile(dry_run=True)
    assert [a.kind for a in report.actions] == [reconcile.Kind.RESEND]
    assert Execution.objects.filter(pk=execution.pk).values().get() == before
    assert stack.backend.queue_depths()["normal"] == 0

    assert dict(reconcile.reconcile().outcomes) == {"resend:resent": 1}
    assert stack.backend.queue_depths()["normal"] == 1


def test_workers_recover_when_their_database_connections_are_killed(redis_stack):
    from django.db import connection

    stack = redis_stack
    stack.worker("normal", threads=2)
    stack.reconciler()
    before = [stack.dispatch(params={"seconds": 1.0}).id for _ in range(4)]
    wait_for(
        lambda: Execution.objects.filter(pk__in=before, status=Status.RUNNING).exists(),
        timeout=30,
        what="a run in progress",
        stack=stack,
    )

    with connection.cursor() as cursor:  # what a PostgreSQL restart does to every other client
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 2
    after = [stack.dispatch(params={"seconds": 0}).id for _ in range(4)]

    stack.wait_all_terminal(before + after, timeout=LEASE_SECONDS + RECONCILE_INTERVAL + 40)
    assert stack.status_counts(before + after) == {"completed": 8}
    # runs in progress reconnected for their heartbeat and outcome: none had to be retried
    assert set(Execution.objects.filter(pk__in=before).values_list("attempt", flat=True)) == {1}
