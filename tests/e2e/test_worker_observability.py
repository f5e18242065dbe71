"""A real API process and a real Dramatiq worker: request ids reach the worker's logs, and the
API's `/metrics` plus the worker's exporter count what the worker did."""

import shutil
import subprocess
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from executions.models import Execution, Status
from tests.conftest import missing_service
from tests.e2e.conftest import http, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

SPEC_METRICS = {
    "spine_executions_submitted_total",
    "spine_executions_completed_total",
    "spine_execution_duration_seconds",
    "spine_pending_executions",
    "spine_dlq_unresolved",
    "spine_dispatch_rejected_total",
    "spine_execution_queue_wait_seconds",
    "spine_oldest_pending_age_seconds",
    "spine_execution_retries_total",
    "spine_orphans_recovered_total",
    "spine_cleanup_deleted_total",
    "spine_circuit_state",
}


def submit(stack, pipeline, params, request_id=None):
    headers = {"X-Request-ID": request_id} if request_id else {}
    status, response_headers, body = http(
        "POST",
        f"{stack.api_url}/test/submit",
        {"pipeline": pipeline, "params": params},
        headers,
    )
    assert status == 202
    import json

    return json.loads(body)["id"], response_headers


def wait_terminal(ids, timeout=45):
    def done():
        rows = dict(Execution.objects.filter(pk__in=ids).values_list("id", "status"))
        return len(rows) == len(ids) and all(s == Status.COMPLETED for s in rows.values())

    wait_for(done, timeout, f"{len(ids)} executions to complete", interval=0.2)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(parsed, name, **labels) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_service("needs promtool (Debian package `prometheus`)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def scrape(stack) -> tuple[str, str]:
    api = http("GET", f"{stack.api_url}/metrics")[2].decode()
    worker = http("GET", stack.worker_metrics_url)[2].decode()
    return api, worker


def test_worker_log_lines_carry_the_requests_x_request_id(stack, transactional_db):
    request_id = f"obs-{uuid.uuid4().hex}"
    execution_id, headers = submit(stack, "diagnostics.sleep", {"seconds": 0}, request_id)
    assert headers["X-Request-ID"] == request_id
    wait_terminal([execution_id])
    assert Execution.objects.get(pk=execution_id).request_id == request_id

    def lines_for_execution():
        lines = [ln for ln in stack.worker_lines() if ln.get("execution_id") == execution_id]
        return lines if any(ln["event"] == "execution.completed" for ln in lines) else None

    lines = wait_for(lines_for_execution, 15, "the worker's execution.completed log line")
    assert {"execution.started", "execution.completed"} <= {ln["event"] for ln in lines}
    for line in lines:
        assert line["request_id"] == request_id
        assert line["pipeline"] == "diagnostics.sleep"
        assert line["attempt"] == 1
        assert line["level"] in ("info", "warning")
        assert line["time"].endswith("Z")


def test_api_and_worker_metrics_count_the_workers_executions(stack, transactional_db):
    before_api, before_worker = map(samples, scrape(stack))
    ids = [submit(stack, "diagnostics.noop", {})[0] for _ in range(5)]
    wait_terminal(ids)

    api_text, worker_text = scrape(stack)
    promtool_check(api_text)
    promtool_check(worker_text)
    api, worker = samples(api_text), samples(worker_text)

    def delta(now, before, name, **labels):
        return value(now, name, **labels) - value(before, name, **labels)

    noop = {"pipeline": "diagnostics.noop"}
    # the API process dispatched them ...
    assert (
        delta(
            api,
            before_api,
            "spine_executions_submitted_total",
            lane="normal",
            trigger_source="api",
            **noop,
        )
        == 5
    )
    # ... the worker ran them (summed over its processes) ...
    assert (
        delta(worker, before_worker, "spine_executions_completed_total", status="completed", **noop)
        == 5
    )
    assert delta(worker, before_worker, "spine_execution_duration_seconds_count", **noop) == 5
    assert (
        delta(worker, before_worker, "spine_execution_queue_wait_seconds_count", lane="normal") == 5
    )
    # ... and the ledger gauges, read at scrape time, show nothing left waiting.
    assert value(api, "spine_pending_executions", lane="normal") == 0
    assert value(api, "spine_dlq_unresolved") == 0
    assert value(api, "django_http_requests_total_by_method_total", method="POST") >= 5

    names = {f.name for f in text_string_to_metric_families(api_text + worker_text)}
    exposed = {n for n in names} | {f"{n}_total" for n in names}
    assert exposed >= SPEC_METRICS
