"""Dramatiq middleware that carries the sender's context into the worker run.

At enqueue it stores the bound `request_id` and the W3C trace context (when tracing is on) in
the message options; before a worker processes the message it binds that `request_id` for the
logs and, with tracing on, opens a consumer span continuing the sender's trace. The runner then
binds `execution_id`, `pipeline` and `attempt` on top (and the execution row's `request_id`).
"""

import threading

import dramatiq
import structlog
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from spine_project import tracing

OPTION = "spine_context"
_tracer = trace.get_tracer("market_spine.worker")


class ContextPropagation(dramatiq.Middleware):
    """Propagate `request_id` and trace context through message options."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_enqueue(self, broker, message, delay):
        carried = {}
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            carried["request_id"] = request_id
        if tracing.enabled():
            propagate.inject(carried)  # adds `traceparent` (and `tracestate`) if a span is active
        if carried:
            message.options[OPTION] = carried

    def before_process_message(self, broker, message):
        carried = message.options.get(OPTION) or {}
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(message_id=message.message_id)
        if carried.get("request_id"):
            structlog.contextvars.bind_contextvars(request_id=carried["request_id"])
        self._local.span = self._local.token = None
        if tracing.enabled():
            span = _tracer.start_span(
                f"{message.queue_name} process",
                context=propagate.extract(carried),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "dramatiq",
                    "messaging.destination.name": message.queue_name,
                    "messaging.message.id": message.message_id,
                    "spine.actor": message.actor_name,
                    "spine.execution_id": str(message.args[0]) if message.args else "",
                },
            )
            self._local.span = span
            self._local.token = context.attach(trace.set_span_in_context(span))

    def after_process_message(self, broker, message, *, result=None, exception=None):
        span = getattr(self._local, "span", None)
        if span is not None:
            if exception is not None:
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
            span.end()
            context.detach(self._local.token)
            self._local.span = self._local.token = None
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message
