"""The apps the instrumentation benchmark compares: one FastAPI endpoint, instrumented each way.

Every variant gets its own registry / providers where the tool allows it. Traces are 100%
sampled and go through a ``BatchSpanProcessor`` to an exporter that drops them, so the cost of
creating, ending and queueing spans is measured but no network is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from prometheus_client import CollectorRegistry

__all__ = ["BREAKDOWN", "VARIANTS", "build"]

VARIANTS: Sequence[str] = (
    "bare",
    "stackwatch_full",
    "stackwatch_full_no_event_loop",
    "stackwatch_metrics_only",
    "prometheus_fastapi_instrumentator",
    "starlette_exporter",
    "otel_fastapi",
    "otel_fastapi_plus_instrumentator",
)


#: in-process only: the parts of stackwatch full, to say what costs what
BREAKDOWN: Sequence[str] = (
    "otel_sdk_span_only",
    "stackwatch_traces_only",
)


class _Drop(SpanExporter):
    """Accepts and discards spans (the benchmark measures the service side only)."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _tracer_provider() -> TracerProvider:
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    return provider


def _instrumentator(app: FastAPI) -> None:
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator(registry=CollectorRegistry()).instrument(app)


def _otel(app: FastAPI) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    FastAPIInstrumentor.instrument_app(app, tracer_provider=_tracer_provider(), meter_provider=meter_provider)


def _bare_span(app: FastAPI) -> Any:
    """``app`` inside the least a server span costs with the SDK: start it, make it current, end it."""
    from opentelemetry import context, trace

    tracer = _tracer_provider().get_tracer("bench")

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        span = tracer.start_span("GET", None, trace.SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span))
        try:
            await app(scope, receive, send)
        finally:
            span.end()
            context.detach(token)

    return traced


def build(variant: str) -> Any:
    """A fresh app with ``GET /items/{item_id}`` instrumented as ``variant``."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    if variant == "bare":
        pass
    elif variant == "stackwatch_full":
        from stackwatch.instrumentation import instrument

        instrument(app, registry=CollectorRegistry(), tracer_provider=_tracer_provider(), exemplars=True, environ={})
    elif variant == "stackwatch_full_no_event_loop":  # what the event-loop signals cost, by difference
        from stackwatch.instrumentation import instrument

        instrument(app, registry=CollectorRegistry(), tracer_provider=_tracer_provider(), exemplars=True,
                   event_loop=False, environ={})
    elif variant == "stackwatch_metrics_only":
        from stackwatch.instrumentation import instrument

        instrument(app, registry=CollectorRegistry(), traces=False, environ={})
    elif variant == "stackwatch_traces_only":
        from stackwatch.instrumentation import instrument

        instrument(app, registry=CollectorRegistry(), tracer_provider=_tracer_provider(), metrics=False, environ={})
    elif variant == "otel_sdk_span_only":
        return _bare_span(app)
    elif variant == "prometheus_fastapi_instrumentator":
        _instrumentator(app)
    elif variant == "starlette_exporter":
        from starlette_exporter import PrometheusMiddleware

        app.add_middleware(PrometheusMiddleware, app_name="bench", group_paths=True)
    elif variant == "otel_fastapi":
        _otel(app)
    elif variant == "otel_fastapi_plus_instrumentator":
        _otel(app)
        _instrumentator(app)
    else:
        raise ValueError(f"variant: expected one of {', '.join((*VARIANTS, *BREAKDOWN))}, got {variant!r}")
    return app
