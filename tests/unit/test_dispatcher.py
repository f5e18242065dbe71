"""The dispatcher: validation, idempotency, logical keys, backpressure, paused lanes, submit."""

import pytest
from django.db.models import Q
from pydantic import BaseModel

from executions import dispatcher, metrics
from executions.errors import (
    BackpressureRejected,
    IdempotencyConflict,
    InvalidLane,
    InvalidParams,
    KeyBusy,
    PipelineNotFound,
)
from executions.models import Execution, ExecutionEvent, Lane, Status
from executions.registry import KeyPolicy, PipelineSpec, registry


class KeyParams(BaseModel):
    week: str


@pytest.fixture
def keyed_pipelines():
    """Two throw-away pipelines with logical keys, one per collision policy."""
    for name, policy in (
        ("test.keyed_reject", KeyPolicy.REJECT),
        ("test.keyed_return", KeyPolicy.RETURN_ACTIVE),
    ):
        registry.register(
            PipelineSpec(
                name=name,
                handler=lambda params, ctx: None,
                params_model=KeyParams,
                logical_key="{week}",
                on_key_collision=policy,
            )
        )
    yield
    registry.unregister("test.keyed_reject")
    registry.unregister("test.keyed_return")


def counts():
    return Execution.objects.count(), ExecutionEvent.objects.count()


def rejected(reason: str) -> float:
    return sum(
        sample.value
        for metric in metrics.DISPATCH_REJECTED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["reason"] == reason
    )


@pytest.mark.django_db
def test_dispatch_creates_a_pending_execution_with_its_event():
    result = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 2}, trigger_source="api", request_id="req-1"
    )

    execution = Execution.objects.get()
    assert result.created is True
    assert result.execution == execution
    assert (execution.status, execution.lane, execution.trigger_source) == (
        "pending",
        "normal",
        "api",
    )
    assert execution.params == {"seconds": 2.0, "fail_attempts": 0, "permanent_failure": False}
    assert (execution.attempt, execution.max_attempts, execution.request_id) == (0, 3, "req-1")
    event = ExecutionEvent.objects.get()
    assert (event.kind, event.from_status, event.to_status, event.request_id) == (
        "created",
        "",
        "pending",
        "req-1",
    )


@pytest.mark.django_db
def test_unknown_pipeline_is_refused_and_nothing_is_created():
    with pytest.raises(PipelineNotFound) as excinfo:
        dispatcher.dispatch("no.such_pipeline", {}, trigger_source="api")
    assert excinfo.value.http_status == 400
    assert "diagnostics.sleep" in excinfo.value.details["known"]
    assert counts() == (0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"seconds": "abc"}, "seconds"),
        ({"seconds": -1}, "seconds"),
        ({"fail_attempts": 1.5}, "fail_attempts"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_params_name_the_field_and_create_nothing(params, field):
    with pytest.raises(InvalidParams) as excinfo:
        dispatcher.dispatch("diagnostics.sleep", params, trigger_source="api")
    assert list(excinfo.value.details) == [field]
    assert field in excinfo.value.message
    assert counts() == (0, 0)


@pytest.mark.django_db
def test_unknown_lane_is_refused():
    with pytest.raises(InvalidLane):
        dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api", lane="fast")
    assert counts() == (0, 0)


@pytest.mark.django_db
def test_idempotency_key_returns_the_same_execution():
    first = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 1}, trigger_source="api", idempotency_key="k1"
    )
    again = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 1}, trigger_source="api", idempotency_key="k1"
    )

    assert first.created is True and again.created is False
    assert again.execution.id == first.execution.id
    assert counts() == (1, 1)


@pytest.mark.django_db
def test_idempotency_key_with_a_different_payload_is_a_conflict():
    first = dispatcher.dispatch(
        "diagnostics.sleep", {"seconds": 1}, trigger_source="api", idempotency_key="k1"
    )
    with pytest.raises(IdempotencyConflict) as excinfo:
        dispatcher.dispatch(
            "diagnostics.sleep", {"seconds": 2}, trigger_source="api", idempotency_key="k1"
        )
    assert excinfo.value.http_status == 409
    assert excinfo.value.details == {"execution_id": str(first.execution.id)}
    assert counts() == (1, 1)


@pytest.mark.django_db
def test_logical_key_reject_policy_refuses_while_active(keyed_pipelines):
    first = dispatcher.dispatch("test.keyed_reject", {"week": "2025-11-10"}, trigger_source="api")
    before = rejected("key_busy")

    with pytest.raises(KeyBusy) as excinfo:
        dispatcher.dispatch("test.keyed_reject", {"week": "2025-11-10"}, trigger_source="api")

    assert excinfo.value.code == "key_busy"
    assert excinfo.value.details["execution_id"] == str(first.execution.id)
    assert counts() == (1, 1)
    assert rejected("key_busy") == before + 1
    # Another week is another key.
    assert dispatcher.dispatch(
        "test.keyed_reject", {"week": "2025-11-17"}, trigger_source="api"
    ).created


@pytest.mark.django_db
def test_logical_key_return_policy_returns_the_active_execution(keyed_pipelines):
    first = dispatcher.dispatch("test.keyed_return", {"week": "2025-11-10"}, trigger_source="api")
    again = dispatcher.dispatch("test.keyed_return", {"week": "2025-11-10"}, trigger_source="api")
    assert again.created is False
    assert again.execution.id == first.execution.id
    assert counts() == (1, 1)


@pytest.mark.django_db
def test_logical_key_is_free_again_once_the_execution_finished(keyed_pipelines):
    first = dispatcher.dispatch("test.keyed_reject", {"week": "2025-11-10"}, trigger_source="api")
    Execution.objects.filter(pk=first.execution.pk).update(status=Status.COMPLETED)
    second = dispatcher.dispatch("test.keyed_reject", {"week": "2025-11-10"}, trigger_source="api")
    assert second.created is True
    assert (
        second.execution.logical_key
        == first.execution.logical_key
        == "test.keyed_reject:2025-11-10"
    )


@pytest.mark.django_db
def test_lane_cap_refuses_with_lane_full(settings):
    settings.SPINE_LANE_LIMITS = {"normal": 2, "backfill": 5}
    for _ in range(2):
        dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    before = rejected("lane_full")

    with pytest.raises(BackpressureRejected) as excinfo:
        dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")

    error = excinfo.value
    assert (error.http_status, error.code, error.reason) == (429, "lane_full", "lane_full")
    assert error.headers() == {"Retry-After": "30"}
    assert error.details == {"reason": "lane_full", "lane": "normal", "active": 2, "cap": 2}
    assert counts() == (2, 2)
    assert rejected("lane_full") == before + 1
    # The backfill lane has its own cap.
    assert dispatcher.dispatch(
        "diagnostics.noop", {}, trigger_source="api", lane="backfill"
    ).created


@pytest.mark.django_db
def test_global_cap_refuses_with_global_full(settings):
    settings.SPINE_LANE_LIMITS = {"normal": 10, "backfill": 10}
    settings.SPINE_MAX_PENDING = 3
    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api", lane="backfill")
    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api", lane="backfill")
    before = rejected("global_full")

    with pytest.raises(BackpressureRejected) as excinfo:
        dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")

    assert excinfo.value.reason == "global_full"
    assert excinfo.value.details == {"reason": "global_full", "active": 3, "cap": 3}
    assert counts() == (3, 3)
    assert rejected("global_full") == before + 1


@pytest.mark.django_db
def test_backpressure_counts_again_only_near_a_cap(settings, monkeypatch):
    settings.SPINE_LANE_LIMITS = {"normal": 10, "backfill": 10}
    settings.SPINE_MAX_PENDING = 100
    settings.SPINE_BACKPRESSURE_RECOUNT_SECONDS = 60
    counted = []
    real_count = dispatcher._count_active
    monkeypatch.setattr(dispatcher, "_count_active", lambda: counted.append(1) or real_count())

    for _ in range(4):  # 0..3 active before each: under half of the lane's 10
        dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    assert len(counted) == 1  # the first dispatch counted; the next three reused it

    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")  # 4 known: under 5
    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")  # 5 known: half, recount
    assert len(counted) == 2

    settings.SPINE_BACKPRESSURE_RECOUNT_SECONDS = 0  # an old count is never reused
    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    assert len(counted) == 3
    assert counts() == (7, 7)


@pytest.mark.django_db
def test_a_refusal_is_based_on_a_fresh_count(settings):
    settings.SPINE_LANE_LIMITS = {"normal": 4, "backfill": 4}
    settings.SPINE_BACKPRESSURE_RECOUNT_SECONDS = 60
    dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")  # counts: 0 active
    for _ in range(3):  # rows another process dispatched meanwhile: this one has not seen them
        Execution.objects.create(pipeline="diagnostics.noop", trigger_source="api")

    # Known to this process: 1 active, under half the cap, so the count is reused and the
    # dispatch is accepted: the documented overshoot (5 active against a cap of 4).
    assert dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").created
    assert Execution.objects.filter(status=Status.PENDING).count() == 5

    # Known: 2, half the cap: this dispatch counts again and refuses on the real figure.
    with pytest.raises(BackpressureRejected) as excinfo:
        dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    assert excinfo.value.details["active"] == 5
    assert Execution.objects.count() == 5


@pytest.mark.django_db
def test_finished_executions_do_not_count_against_the_caps(settings):
    settings.SPINE_LANE_LIMITS = {"normal": 1}
    first = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    Execution.objects.filter(pk=first.execution.pk).update(status=Status.FAILED)
    assert dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api").created


@pytest.mark.django_db
def test_submit_moves_pending_to_queued_with_the_run_id(make_execution, recording_backend):
    execution = make_execution()

    assert dispatcher.submit(execution.id) is True

    execution.refresh_from_db()
    assert execution.status == Status.QUEUED
    assert (execution.backend, execution.backend_run_id) == ("recording", "run-1")
    assert execution.queued_at is not None
    assert recording_backend.submitted == [(str(execution.id), "normal", 0.0)]
    kinds = list(execution.events.values_list("kind", "from_status", "to_status"))
    assert kinds == [("created", "", "pending"), ("submitted", "pending", "queued")]


@pytest.mark.django_db
def test_failed_send_leaves_the_row_pending_with_an_event(make_execution, recording_backend):
    execution = make_execution()
    recording_backend.fail_with = ConnectionError("broker down")

    assert dispatcher.submit(execution.id) is False

    execution.refresh_from_db()
    assert execution.status == Status.PENDING
    assert execution.backend_run_id == ""
    event = execution.events.order_by("id").last()
    assert event.kind == "submit_failed"
    assert event.data == {"backend": "recording", "error": "ConnectionError: broker down"}


@pytest.mark.django_db
def test_paused_lane_holds_work_as_pending_until_resumed(make_execution, recording_backend, actor):
    from executions import services

    services.set_lane_paused("normal", True, actor=actor)
    execution = make_execution()

    assert dispatcher.submit(execution.id) is False
    execution.refresh_from_db()
    assert execution.status == Status.PENDING
    assert recording_backend.submitted == []

    services.set_lane_paused("normal", False, actor=actor)
    execution.refresh_from_db()
    assert execution.status == Status.QUEUED
    assert recording_backend.submitted == [(str(execution.id), "normal", 0.0)]
    assert Lane.objects.get(name="normal").paused is False


@pytest.mark.django_db
def test_submit_of_an_already_submitted_execution_does_nothing(queued, recording_backend):
    execution = queued()
    assert dispatcher.submit(execution.id) is False
    assert len(recording_backend.submitted) == 1


@pytest.mark.django_db
def test_submit_happens_after_commit(django_capture_on_commit_callbacks, recording_backend):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = dispatcher.dispatch("diagnostics.noop", {}, trigger_source="api")
    assert recording_backend.submitted == []  # nothing is sent before the row is committed
    assert len(callbacks) == 1
    callbacks[0]()
    assert Execution.objects.filter(Q(pk=result.execution.pk), status=Status.QUEUED).exists()


@pytest.mark.django_db
def test_submit_that_loses_a_race_returns_false_and_its_message_is_dropped(
    make_execution, recording_backend, monkeypatch
):
    from executions import runner

    execution = make_execution()
    real_submit = recording_backend.submit

    def cancelled_meanwhile(*args, **kwargs):
        # A concurrent cancel lands between the submit's read of the row and its send.
        Execution.objects.filter(pk=execution.pk).update(status=Status.CANCELLED)
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(recording_backend, "submit", cancelled_meanwhile)
    withdrawn = []
    monkeypatch.setattr(recording_backend, "cancel", lambda *args: withdrawn.append(args))

    assert dispatcher.submit(execution.id) is False

    execution.refresh_from_db()
    assert (execution.status, execution.backend_run_id) == (Status.CANCELLED, "")
    assert list(execution.events.values_list("kind", flat=True)) == ["created"]
    assert recording_backend.submitted == [(str(execution.id), "normal", 0.0)]
    assert withdrawn == [(str(execution.id), "run-1")]  # the stray message, where it can be
    assert runner.run_execution(execution.id) is None  # and else the claim drops it
    assert Execution.objects.get(pk=execution.pk).status == Status.CANCELLED
