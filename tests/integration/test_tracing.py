"""With tracing on, a worker's run continues the trace of the API request that submitted it.

The request goes through Django (OpenTelemetry's instrumentation), the dispatcher sends a real
Dramatiq message (encoded and decoded through the stub broker), and a Dramatiq worker in this
process runs it: the trace context travels only inside the message.
"""

import dramatiq
import pytest
from django.test import Client
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from executions.backends.dramatiq import DramatiqBackend
from executions.models import Execution, Status
from spine_project.messaging import OPTION
from spine_project.tracing import configure_tracing, disable_tracing


@pytest.fixture
def exporter():
    exporter = InMemorySpanExporter()
    configure_tracing(exporter="none", processor=SimpleSpanProcessor(exporter))
    yield exporter
    disable_tracing()
    exporter.shutdown()


@pytest.fixture
def dramatiq_backend(settings, monkeypatch):
    """The dramatiq backend on this process's broker (the stub broker in embedded mode)."""
    settings.SPINE_BROKER_URL = "redis://127.0.0.1:1/0"  # only checked for presence
    backend = DramatiqBackend()
    monkeypatch.setattr("executions.dispatcher.get_backend", lambda: backend)
    return dramatiq.get_broker()


@pytest.mark.django_db(transaction=True)
def test_worker_span_shares_the_request_trace_id(exporter, dramatiq_backend, settings):
    settings.ROOT_URLCONF = "tests.e2e.urls"
    broker = dramatiq_backend
    sent = []
    broker.add_middleware(_Spy(sent))
    response = Client(HTTP_HOST="localhost").post(
        "/test/submit",
        {"pipeline": "diagnostics.sleep", "params": {"seconds": 0}},
        content_type="application/json",
        HTTP_X_REQUEST_ID="trace-test-1",
    )
    assert response.status_code == 202
    execution_id = response.json()["id"]

    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join("spine.normal", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
        broker.middleware.remove(broker.middleware[-1])

    assert Execution.objects.get(pk=execution_id).status == Status.COMPLETED
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    [consumer] = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert consumer.context.trace_id == server.context.trace_id
    assert consumer.parent.span_id == server.context.span_id
    assert consumer.attributes["spine.execution_id"] == execution_id
    # the message carried the request id and the W3C trace context, nothing else
    [options] = sent
    assert options["request_id"] == "trace-test-1"
    assert options["traceparent"].split("-")[1] == format(server.context.trace_id, "032x")


def test_tracing_is_off_unless_configured(settings):
    from spine_project import tracing

    assert settings.SPINE_TRACING is False
    assert tracing.enabled() is False


class _Spy(dramatiq.Middleware):
    """Records the context option of every enqueued message."""

    def __init__(self, sent):
        self.sent = sent

    def after_enqueue(self, broker, message, delay):
        self.sent.append(dict(message.options.get(OPTION, {})))
