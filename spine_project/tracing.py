"""Optional OpenTelemetry tracing: off unless configured (SPINE_TRACING=1 or an OTLP endpoint).

When on, Django requests get server spans (opentelemetry-instrumentation-django) and each
Dramatiq run gets a consumer span that continues the trace of whoever sent the message
(`spine_project.messaging`), so a worker run shares the trace id of the API request.
"""

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

log = structlog.get_logger(__name__)

_state = {"enabled": False}


def enabled() -> bool:
    """True once tracing was switched on in this process."""
    return _state["enabled"]


def configure_tracing(*, exporter: str = "otlp", processor: SpanProcessor | None = None) -> None:
    """Install a tracer provider (once per process) and instrument Django.

    `exporter` is `otlp` (OTEL_EXPORTER_OTLP_* variables), `console`, or `none` (spans are made
    and propagated but not exported); `processor` adds one more (tests use an in-memory one).
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "market-spine"}))
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    if processor is not None:
        provider.add_span_processor(processor)
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    _state["enabled"] = True
    log.info("tracing.enabled", exporter=exporter)


def disable_tracing() -> None:
    """Stop making spans in this process (tests); the provider stays installed."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    _state["enabled"] = False
