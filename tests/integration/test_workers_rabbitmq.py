"""End-to-end runs on RabbitMQ: lanes, delayed retries, duplicates, cancel, crash recovery."""

import time

import pytest

from executions import services
from executions.models import Execution, ExecutionEvent, Status
from executions.transitions import Actor
from tests.integration.conftest import LEASE_SECONDS, QUEUED_GRACE, RECONCILE_INTERVAL, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def test_rabbitmq_end_to_end(rabbit_stack):
    stack = rabbit_stack
    ok = [stack.dispatch(params={"seconds": 0.1}) for _ in range(3)]
    backfill = stack.dispatch(params={"seconds": 0}, lane="backfill")
    flaky = stack.dispatch(params={"seconds": 0, "fail_attempts": 1})
    broken = stack.dispatch(params={"permanent_failure": True})
    assert stack.backend.queue_depths() == {"normal": 5, "backfill": 1}
    for _ in range(2):  # duplicate deliveries of one message
        stack.backend.submit(str(ok[0].id), "normal", 0)
    stack.worker("normal", threads=2)
    stack.worker("backfill", threads=1)

    ids = [e.id for e in [*ok, backfill, flaky, broken]]
    stack.wait_all_terminal(ids, timeout=45)

    assert stack.status_counts(ids) == {"completed": 5, "failed": 1}
    assert Execution.objects.get(pk=broken.pk).error_type == "PermanentError"
    assert stack.event_kinds(ok[0].id) == ["created", "submitted", "started", "completed"]
    assert stack.event_kinds(flaky.id) == [
        "created",
        "submitted",
        "started",
        "retry_scheduled",
        "started",
        "completed",
    ]
    wait_for(
        lambda: stack.backend.queue_depths() == {"normal": 0, "backfill": 0},
        timeout=10,
        what="queues drained",
    )


def test_rabbitmq_cancel_within_5_seconds(rabbit_stack):
    stack = rabbit_stack
    stack.worker("normal", threads=1)
    execution = stack.dispatch(params={"seconds": 60})
    stack.wait_status(execution.id, Status.RUNNING, timeout=30)

    requested = time.monotonic()
    services.cancel(execution.id, actor=Actor.system("test"))
    stack.wait_status(execution.id, Status.CANCELLED, timeout=5)

    assert time.monotonic() - requested < 5
    assert ExecutionEvent.objects.get(execution=execution, kind="cancelled").actor == "runner"
    follow_up = stack.dispatch(params={"seconds": 0})
    stack.wait_status(follow_up.id, Status.COMPLETED, timeout=10)


@pytest.mark.slow
def test_rabbitmq_lost_messages_and_kill9_lose_nothing(rabbit_stack):
    stack = rabbit_stack
    lost = [stack.dispatch(params={"seconds": 0}) for _ in range(5)]
    stack.backend.broker.channel.queue_purge(f"{stack.prefix}.normal")  # the broker lost them
    ids = [stack.dispatch(params={"seconds": 1.0}).id for _ in range(40)]
    first = stack.worker("normal", threads=4)
    wait_for(
        lambda: Execution.objects.filter(pk__in=ids, status=Status.RUNNING).count() >= 4,
        timeout=30,
        what="4 executions running",
        stack=stack,
    )

    first.kill9()
    stack.worker("normal", threads=4)
    stack.reconciler()

    all_ids = ids + [e.id for e in lost]
    stack.wait_all_terminal(all_ids, timeout=LEASE_SECONDS + RECONCILE_INTERVAL + QUEUED_GRACE + 30)
    assert stack.status_counts(all_ids) == {"completed": 45}
    assert ExecutionEvent.objects.filter(execution_id__in=all_ids, kind="completed").count() == 45
    for execution in lost:
        kinds = stack.event_kinds(execution.id)
        assert kinds[:3] == ["created", "submitted", "resubmitted"]
        assert (kinds.count("started"), kinds[-1]) == (1, "completed")
