"""The executions API: submit (202, Idempotency-Key), list, filters, cursor pages, detail,
events, cancel and retry, each with its audit event and exact refusals."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.api import views
from executions.models import Execution, ExecutionEvent

SUBMIT = {"pipeline": "diagnostics.sleep", "params": {"seconds": 0.5}}


@pytest.fixture
def operator(api_client_for, recording_backend):
    return api_client_for("operator")


def snapshot():
    return list(Execution.objects.order_by("id").values()), ExecutionEvent.objects.count()


def test_submit_answers_202_with_location_and_records_who_and_request_id(operator):
    response = operator.post(
        "/api/v1/executions/", SUBMIT, format="json", HTTP_X_REQUEST_ID="req-42"
    )

    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == f"/api/v1/executions/{body['id']}/"
    assert response["X-Request-ID"] == "req-42"
    execution = Execution.objects.get(pk=body["id"])
    assert (execution.pipeline, execution.trigger_source, execution.created_by.username) == (
        "diagnostics.sleep",
        "api",
        "operator",
    )
    assert execution.request_id == "req-42"
    assert execution.params == {"seconds": 0.5, "fail_attempts": 0, "permanent_failure": False}
    created = execution.events.get(kind="created")
    assert (created.actor, created.source, created.request_id) == ("operator", "api", "req-42")


def test_same_idempotency_key_and_payload_returns_the_same_execution(operator):
    first = operator.post("/api/v1/executions/", SUBMIT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = operator.post("/api/v1/executions/", SUBMIT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Execution.objects.count() == 1


def test_same_idempotency_key_with_another_payload_is_409_and_creates_nothing(operator):
    operator.post("/api/v1/executions/", SUBMIT, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    before = snapshot()

    other = {"pipeline": "diagnostics.sleep", "params": {"seconds": 9}}
    response = operator.post(
        "/api/v1/executions/", other, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"pipeline": "diagnostics.sleep", "params": {"seconds": -1}}, "invalid_params", "seconds"),
        ({"pipeline": "diagnostics.sleep", "params": {"nope": 1}}, "invalid_params", "nope"),
        ({"pipeline": "no.such_pipeline"}, "pipeline_not_found", "pipeline"),
        ({"params": {}}, "invalid", "pipeline"),
        ({"pipeline": "diagnostics.sleep", "lane": "fast"}, "invalid", "lane"),
    ],
)
def test_bad_submissions_are_400_naming_the_field_and_create_nothing(operator, body, code, field):
    response = operator.post("/api/v1/executions/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert field in response.json()["details"]
    assert snapshot() == ([], 0)


def test_backpressure_is_429_with_retry_after(operator, settings):
    settings.SPINE_LANE_LIMITS = {"normal": 1, "backfill": 1}
    assert operator.post("/api/v1/executions/", SUBMIT, format="json").status_code == 202
    before = snapshot()

    response = operator.post("/api/v1/executions/", SUBMIT, format="json")

    assert response.status_code == 429
    assert response.json()["code"] == "lane_full"
    assert response["Retry-After"] == str(settings.SPINE_RETRY_AFTER_SECONDS)
    assert snapshot() == before


def test_list_filters_and_cursor_pages(operator, execution_in, monkeypatch):
    monkeypatch.setattr(views.NewestFirst, "page_size", 2)
    failed = [execution_in("failed") for _ in range(3)]
    done = execution_in("completed", pipeline="diagnostics.noop")
    old = execution_in("pending")
    Execution.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

    page1 = operator.get("/api/v1/executions/?status=failed").json()
    page2 = operator.get(page1["next"]).json()
    assert [r["id"] for r in page1["results"] + page2["results"]] == [
        str(e.id) for e in reversed(failed)
    ]
    assert page2["next"] is None

    by_pipeline = operator.get("/api/v1/executions/?pipeline=diagnostics.noop").json()
    assert [r["id"] for r in by_pipeline["results"]] == [str(done.id)]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    recent = operator.get("/api/v1/executions/", {"created_before": since}).json()
    assert [r["id"] for r in recent["results"]] == [str(old.id)]
    both = operator.get("/api/v1/executions/?status=failed&status=completed&lane=normal")
    assert len(both.json()["results"]) == 2  # first page of four

    bad = operator.get("/api/v1/executions/?status=exploded")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid"


def test_a_list_naming_no_filter_builds_no_filter_set(operator, execution_in, monkeypatch):
    from executions.api.filters import ExecutionFilter

    built = []
    original = ExecutionFilter.__init__
    monkeypatch.setattr(
        ExecutionFilter,
        "__init__",
        lambda self, *args, **kwargs: built.append(1) or original(self, *args, **kwargs),
    )
    failed, done = execution_in("failed"), execution_in("completed")

    unfiltered = operator.get("/api/v1/executions/?unknown=1")
    assert [r["id"] for r in unfiltered.json()["results"]] == [str(done.id), str(failed.id)]
    assert built == []
    empty = operator.get("/api/v1/executions/?pipeline=")  # named, empty: every row
    assert [r["id"] for r in empty.json()["results"]] == [str(done.id), str(failed.id)]
    assert operator.get("/api/v1/executions/?status=exploded").status_code == 400
    assert len(built) == 2


LIST_ONLY_OMITS = {
    "params",
    "result",
    "error_traceback",
    "request_id",
    "idempotency_key",
    "backend",
    "backend_run_id",
    "not_before",
    "queued_at",
    "deadline_at",
    "cancel_requested_by",
    "cancel_reason",
}


def test_list_items_are_the_detail_less_the_heavy_fields(operator, execution_in):
    submitted = operator.post("/api/v1/executions/", SUBMIT, format="json").json()
    failed = execution_in("failed")
    now = timezone.now()
    Execution.objects.filter(pk=failed.pk).update(
        started_at=now - timedelta(seconds=1.5),
        finished_at=now,
        error_type="ValueError",
        error_message="bad row 7",
        error_traceback="Traceback …",
    )
    retried = operator.post(f"/api/v1/executions/{failed.id}/retry/", {"reason": "again"}).json()
    running = execution_in("running")
    operator.post(f"/api/v1/executions/{running.id}/cancel/", {"reason": "stop"})
    execution_in("completed")

    items = operator.get("/api/v1/executions/").json()["results"]

    assert len(items) == 5
    for item in items:
        detail = operator.get(f"/api/v1/executions/{item['id']}/").json()
        assert item == {k: v for k, v in detail.items() if k not in LIST_ONLY_OMITS}
    by_id = {item["id"]: item for item in items}
    assert by_id[submitted["id"]]["created_by"] == "operator"
    assert by_id[retried["id"]]["parent"] == str(failed.id)
    assert by_id[str(failed.id)]["error_message"] == "bad row 7"
    assert by_id[str(failed.id)]["duration_seconds"] == 1.5
    assert by_id[str(running.id)]["cancel_requested_at"] is not None


def test_detail_and_unknown_id(operator, execution_in):
    execution = execution_in("failed")

    assert operator.get(f"/api/v1/executions/{execution.id}/").json()["status"] == "failed"
    missing = operator.get("/api/v1/executions/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_events_are_the_audit_trail_oldest_first(operator, execution_in):
    execution = execution_in("failed")

    events = operator.get(f"/api/v1/executions/{execution.id}/events/").json()["results"]

    assert [(e["kind"], e["to_status"]) for e in events] == [
        ("created", "pending"),
        ("test_queued", "queued"),
        ("test_running", "running"),
        ("test_failed", "failed"),
    ]


def test_cancel_records_actor_reason_and_request_id(operator, execution_in):
    execution = execution_in("queued")

    response = operator.post(
        f"/api/v1/executions/{execution.id}/cancel/",
        {"reason": "wrong params"},
        format="json",
        HTTP_X_REQUEST_ID="req-cancel",
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    event = execution.events.get(kind="cancelled")
    assert (event.actor, event.source, event.reason, event.request_id) == (
        "operator",
        "api",
        "wrong params",
        "req-cancel",
    )


def test_cancel_of_a_running_execution_is_a_request_202(operator, execution_in):
    execution = execution_in("running")

    response = operator.post(f"/api/v1/executions/{execution.id}/cancel/", {}, format="json")

    assert response.status_code == 202
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested_by"] == "operator"


def test_cancel_of_a_finished_execution_is_409_and_changes_nothing(operator, execution_in):
    execution = execution_in("completed")
    before = snapshot()

    response = operator.post(f"/api/v1/executions/{execution.id}/cancel/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert snapshot() == before


def test_retry_creates_a_child_and_records_who(operator, execution_in):
    execution = execution_in("failed")

    response = operator.post(
        f"/api/v1/executions/{execution.id}/retry/",
        {"reason": "source fixed"},
        format="json",
        HTTP_X_REQUEST_ID="req-retry",
    )

    assert response.status_code == 202
    child = Execution.objects.get(pk=response.json()["id"])
    assert (child.parent_id, child.root_id, child.trigger_source) == (
        execution.id,
        execution.id,
        "retry",
    )
    assert child.request_id == "req-retry"
    created = child.events.get(kind="created")
    assert (created.actor, created.source, created.reason) == ("operator", "api", "source fixed")
    event = execution.events.get(kind="retried")
    assert (event.actor, event.reason, event.request_id, event.data) == (
        "operator",
        "source fixed",
        "req-retry",
        {"new_execution_id": str(child.id)},
    )
    execution.refresh_from_db()
    assert execution.status == "failed"


def test_retry_of_an_active_execution_is_409_and_changes_nothing(operator, execution_in):
    execution = execution_in("running")
    before = snapshot()

    response = operator.post(f"/api/v1/executions/{execution.id}/retry/", {}, format="json")

    assert response.status_code == 409
    assert snapshot() == before


def test_pipelines_describe_params_and_policy(operator):
    response = operator.get("/api/v1/pipelines/diagnostics.sleep/")

    body = response.json()
    assert body["lane"] == "normal"
    assert body["retry"]["max_attempts"] == 3
    assert set(body["params_schema"]["properties"]) == {
        "seconds",
        "fail_attempts",
        "permanent_failure",
    }
    assert operator.get("/api/v1/pipelines/no.such/").status_code == 404
    names = [p["name"] for p in operator.get("/api/v1/pipelines/").json()]
    assert {"diagnostics.noop", "diagnostics.sleep"} <= set(names)


def test_pause_and_resume_a_lane(operator, make_execution, recording_backend):
    paused = operator.post("/api/v1/lanes/normal/pause/", {"reason": "deploy"}, format="json")
    assert paused.json() | {"changed_at": None} == {
        "name": "normal",
        "paused": True,
        "changed_at": None,
        "changed_by": "operator",
        "reason": "deploy",
    }
    held = make_execution()

    resumed = operator.post("/api/v1/lanes/normal/resume/", {}, format="json")

    assert resumed.json()["paused"] is False
    held.refresh_from_db()
    assert held.status == "queued"
    assert recording_backend.submitted == [(str(held.id), "normal", 0.0)]
    assert operator.post("/api/v1/lanes/fast/pause/", {}, format="json").status_code == 404


def test_unknown_api_route_is_json_404(operator, settings):
    settings.DEBUG = False

    response = operator.get("/api/v1/nothing-here/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_unexpected_error_under_the_api_is_json_with_the_request_id(operator, monkeypatch):
    from executions.api import views

    def broken(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.ExecutionViewSet, "list", broken)
    operator.raise_request_exception = False

    response = operator.get("/api/v1/executions/", HTTP_X_REQUEST_ID="req-500")

    assert response.status_code == 500
    assert response.json() == {
        "code": "server_error",
        "message": "Internal error; quote request id req-500 when reporting it.",
        "details": {"request_id": "req-500"},
    }
