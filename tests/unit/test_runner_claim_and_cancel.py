"""The runner against concurrent writers: a claim racing the queuing write, a stubborn handler."""

import threading
import time

import pytest
from django.db import connection, transaction

from executions import runner, services
from executions.models import Execution, ExecutionEvent, Status
from executions.registry import PipelineSpec, registry
from executions.transitions import Actor, transition


def claim_as_the_writer_goes(execution, writer, ready=None) -> float:
    """Claim `execution` while `writer` runs in a thread (after `ready`, if given): seconds taken.

    The claim must succeed as the first attempt of "host:1:worker", after the writer's submit.
    """

    def write():
        try:
            writer()
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    assert ready is None or ready.wait(10)
    started = time.monotonic()
    claimed = runner._claim(execution.id, "host:1:worker")
    waited = time.monotonic() - started
    thread.join()

    assert claimed is not None
    assert (claimed.status, claimed.attempt, claimed.worker_id) == ("running", 1, "host:1:worker")
    kinds = list(
        ExecutionEvent.objects.filter(execution=execution)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["created", "submitted", "submitted", "started"]
    return waited


@pytest.mark.postgres
def test_claim_waits_for_the_transaction_that_queues_the_row(
    transactional_db, postgres, make_execution, recording_backend
):
    execution = make_execution(params={"seconds": 0})
    Execution.objects.filter(pk=execution.pk).update(status=Status.PENDING)  # undo the submit
    queuing = threading.Event()

    def submit_inside_a_transaction():
        with transaction.atomic():
            transition(execution.id, frm="pending", to="queued", kind="submitted", actor=Actor("t"))
            queuing.set()
            time.sleep(1.0)  # the broker already delivered; the commit is still to come

    assert claim_as_the_writer_goes(execution, submit_inside_a_transaction, queuing) >= 0.5


@pytest.mark.postgres
def test_a_message_that_arrives_before_its_submit_is_recorded_waits_for_it(
    transactional_db, postgres, make_execution, recording_backend
):
    # The dispatcher sends first and records `pending -> queued` after: a worker can get the
    # message while the row is still pending.
    execution = make_execution(params={"seconds": 0})
    Execution.objects.filter(pk=execution.pk).update(status=Status.PENDING)  # undo the submit

    def record_the_send_late():
        time.sleep(0.5)
        transition(execution.id, frm="pending", to="queued", kind="submitted", actor=Actor("t"))

    assert 0.5 <= claim_as_the_writer_goes(execution, record_the_send_late) < 2


@pytest.mark.django_db
def test_a_message_whose_execution_stays_pending_is_dropped_after_a_bounded_wait(
    make_execution, monkeypatch
):
    # The dispatcher died between its send and recording it: the row stays pending, and the
    # reconciler submits it again later.
    monkeypatch.setattr(runner, "PENDING_WAIT_SECONDS", 0.3)
    execution = make_execution(params={"seconds": 0})
    events = ExecutionEvent.objects.filter(execution=execution).count()

    started = time.monotonic()
    assert runner.run_execution(execution.id, worker_id="host:1:worker") is None
    waited = time.monotonic() - started

    assert 0.1 <= waited < 1
    row = Execution.objects.get(pk=execution.pk)
    assert (row.status, row.attempt, row.worker_id) == (Status.PENDING, 0, "")
    assert ExecutionEvent.objects.filter(execution=execution).count() == events


@pytest.fixture
def stubborn_pipeline():
    """A handler that never looks at its context: only an interrupt can stop it."""
    ran = {"iterations": 0, "stopped": False}

    def handler(params, ctx):
        try:
            while True:
                ran["iterations"] += 1
                time.sleep(0.02)
        finally:
            ran["stopped"] = True

    registry.register(PipelineSpec(name="tests.stubborn", handler=handler))
    yield ran
    registry.unregister("tests.stubborn")


def test_cancel_interrupts_a_handler_that_ignores_it(
    transactional_db, stubborn_pipeline, make_execution, recording_backend, settings
):
    settings.SPINE_CANCEL_POLL_SECONDS = 0.1
    execution = make_execution("tests.stubborn")  # committed, so submitted: queued
    assert Execution.objects.get(pk=execution.pk).status == Status.QUEUED
    result = {}

    def work():
        try:
            result["status"] = runner.run_execution(execution.id, worker_id="host:1:w")
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 10
    while stubborn_pipeline["iterations"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    requested = time.monotonic()
    services.cancel(execution.id, actor=Actor.system("test"))
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert time.monotonic() - requested < 5
    assert result["status"] == Status.CANCELLED
    assert stubborn_pipeline["stopped"] is True
    iterations = stubborn_pipeline["iterations"]
    time.sleep(0.1)
    assert stubborn_pipeline["iterations"] == iterations  # it really stopped
    assert Execution.objects.get(pk=execution.pk).status == Status.CANCELLED


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_submit_inside_a_callers_transaction_leaves_its_commit_durable(
    postgres, make_execution, recording_backend
):
    from executions import dispatcher

    execution = make_execution(params={"seconds": 0})  # pending: a db test never commits
    with transaction.atomic():
        assert dispatcher.submit(execution.id) is True
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            # the relaxed commit is for a submit's own statement only, never the caller's
            assert cursor.fetchone()[0] == "on"
    assert Execution.objects.get(pk=execution.pk).status == Status.QUEUED


def test_monitors_start_at_once_on_daemon_threads_and_reuse_them():
    pool = runner._MonitorThreads()
    started, release = threading.Semaphore(0), threading.Event()
    names = []

    def watch():
        names.append(threading.current_thread())
        started.release()
        release.wait(10)

    for _ in range(5):  # five runs at once: five monitors start, none waits for another
        pool.submit(watch)
    assert all(started.acquire(timeout=5) for _ in range(5))
    assert len(set(names)) == 5 and all(t.daemon for t in names)

    release.set()
    deadline = time.monotonic() + 5
    while pool._idle < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.submit(watch)  # a later run reuses an idle thread
    assert started.acquire(timeout=5)
    assert len(set(names)) == 5


def test_a_monitor_gets_a_thread_only_if_its_run_outlasts_the_first_check(monkeypatch):
    handed = []
    monkeypatch.setattr(runner._MONITORS, "submit", lambda task: handed.append(task))
    timer = runner._MonitorTimer()

    def monitor():
        ctx = runner.RunContext(
            execution_id=None, pipeline="p", attempt=1, max_attempts=1, deadline=None, logger=None
        )
        return runner._Monitor(ctx, "w", threading.get_ident(), timeout=60)

    quick, slow = monitor(), monitor()
    timer.schedule(quick, time.monotonic() + 0.2)
    timer.schedule(slow, time.monotonic() + 0.2)
    quick.disarm()  # this run ended before its first check was due
    time.sleep(0.5)

    assert handed == [slow.run]
    assert timer._heap == []
