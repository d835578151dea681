"""OpenTelemetry setup: a tracer provider with the service resource, sampler and OTLP/HTTP export.

Only used when no tracer provider is injected. Export is a batch processor on a background
thread, so an unreachable collector never slows a request; W3C trace context is what
:func:`extract_context` reads from incoming headers and :func:`outgoing_headers` writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .config import Settings

__all__ = ["build_sampler", "build_tracer_provider", "current_ids", "extract_context", "outgoing_headers"]

_PROPAGATOR = TraceContextTextMapPropagator()


def build_sampler(name: str, arg: float) -> sampling.Sampler:
    """The sampler named by ``OTEL_TRACES_SAMPLER`` (default: parent-based trace-id ratio)."""
    ratio = sampling.TraceIdRatioBased(arg)
    return {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(ratio),
    }[name]


def build_tracer_provider(settings: Settings) -> TracerProvider:
    """A provider for ``settings.service_name``; spans go to the OTLP endpoint when one is set."""
    resource = Resource.create({"service.name": settings.service_name})
    provider = TracerProvider(resource=resource, sampler=build_sampler(settings.sampler, settings.sampler_arg))
    endpoint = settings.traces_endpoint
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
    return provider


def extract_context(raw_headers: Iterable[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The parent context from ``traceparent``/``tracestate`` headers, or None when absent."""
    carrier: dict[str, str] | None = None
    for name, value in raw_headers:
        if name == b"traceparent" or name == b"tracestate":
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    if carrier is None or "traceparent" not in carrier:
        return None
    return _PROPAGATOR.extract(carrier)


def outgoing_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus ``traceparent``/``tracestate`` of the current span, for calls to other services."""
    headers = {} if headers is None else headers
    _PROPAGATOR.inject(headers)
    return headers


def current_ids() -> tuple[str, str] | None:
    """Hex ``(trace_id, span_id)`` of the current span when it is valid."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
