"""OpenTelemetry setup: which tracer provider serves the request spans, propagation in and out.

Like the OpenTelemetry instrumentors, stackwatch uses the process-global tracer provider unless
one is injected, so its request spans and the child spans of other instrumentations (httpx,
redis, psycopg...) share one pipeline and one resource. Only when nothing is configured (the
global is still the API's proxy placeholder) does it build a provider from the settings (service
resource, sampler, batch OTLP export) and make that the global one, as the
``opentelemetry-instrument`` launcher would. ``OTEL_SDK_DISABLED=true`` builds nothing.

Propagation uses OpenTelemetry's global propagator (``OTEL_PROPAGATORS``, default W3C trace
context and baggage, or whatever ``propagate.set_global_textmap`` installed), both in
:func:`extract_context` and in :func:`outgoing_headers`.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .config import Settings

__all__ = [
    "build_sampler",
    "build_tracer_provider",
    "current_ids",
    "built_exporter",
    "exemplar_labels",
    "extract_context",
    "outgoing_headers",
    "resolve_tracer_provider",
    "set_valid_attributes",
    "span_ids",
]

logger = logging.getLogger("stackwatch.instrumentation")
_GRPC_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc"
_built: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()  # built provider -> its exporter
_SDK_UPDATE_NAME = SDKSpan.update_name


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
    exporter = _otlp_exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _built[provider] = "none" if exporter is None else "otlp"
    return provider


def built_exporter(provider: Any) -> str | None:
    """Where a provider :func:`build_tracer_provider` built exports spans (``otlp`` or ``none``);
    None for a provider the service (or another library) configured."""
    try:
        return _built.get(provider)
    except TypeError:  # not weakly referenceable: not one of ours
        return None


def _otlp_exporter(settings: Settings) -> SpanExporter | None:
    """The exporter ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`` asks for; None (with a warning) when unavailable."""
    protocol = settings.traces_protocol
    if protocol == "http/protobuf":
        endpoint = settings.traces_endpoint
        if not endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, timeout=5)
    endpoint = settings.otlp_traces_endpoint or settings.otlp_endpoint
    if not endpoint:
        return None
    if protocol == "grpc" and importlib.util.find_spec(_GRPC_EXPORTER) is not None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        exporter: SpanExporter = GrpcSpanExporter(endpoint=endpoint, timeout=5)
        return exporter
    package = "opentelemetry-exporter-otlp-proto-grpc is not installed" if protocol == "grpc" else (
        "the Python OTLP exporters do not implement it")
    message = (f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: {package}; spans are NOT exported "
               "(install it, or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and the collector's HTTP port)")
    warnings.warn(message, RuntimeWarning, stacklevel=4)
    logger.warning(message)
    return None


def _configured(provider: Any) -> bool:
    """False for the API's placeholder that stands in until a provider is set globally."""
    return not isinstance(provider, trace.ProxyTracerProvider)


def resolve_tracer_provider(settings: Settings, injected: Any = None) -> tuple[Any, TracerProvider | None]:
    """``(provider for the request spans, the one stackwatch built or None)``; ``(None, None)`` when disabled.

    The injected provider wins, then the global one. A built provider is made the global one so
    the process has one provider and one resource; if another thread set one first, that one is
    used and the built one is shut down.
    """
    if injected is not None:
        return injected, None
    current = trace.get_tracer_provider()
    if _configured(current):
        return current, None
    if settings.sdk_disabled:
        return None, None
    built = build_tracer_provider(settings)
    trace.set_tracer_provider(built)
    current = trace.get_tracer_provider()
    if current is not built:
        built.shutdown()
        return current, None
    return built, built


def extract_context(raw_headers: Iterable[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The parent context the global propagator reads from the request headers; None when it finds none.

    Only the header names the propagator declares (``fields``) are decoded, so a request without
    trace headers costs one pass over the raw names.
    """
    propagator = propagate.get_global_textmap()
    fields = _fields(propagator)
    carrier: dict[str, str] | None = None
    for name, value in raw_headers:
        if name in fields:
            if carrier is None:
                carrier = {}
            key = name.decode("latin-1")
            carrier[key] = f"{carrier[key]},{value.decode('latin-1')}" if key in carrier else value.decode("latin-1")
    if carrier is None:
        return None
    return propagator.extract(carrier)


_field_cache: tuple[Any, frozenset[bytes]] = (None, frozenset())


def _fields(propagator: Any) -> frozenset[bytes]:
    global _field_cache
    cached, fields = _field_cache
    if cached is not propagator:
        fields = frozenset(f.lower().encode("latin-1") for f in propagator.fields)
        _field_cache = (propagator, fields)
    return fields


def set_valid_attributes(span: Any, attributes: dict[str, Any], name: str | None = None) -> None:
    """``span.update_name(name)`` (unless None) and ``span.set_attributes(attributes)`` for values that
    are valid already (str, int, tuples of str).

    The request path: the SDK validates every value again, which was a fifth of what a server span
    cost, and takes a lock per call. For the SDK's own span, still recording, with no value-length
    limit and room under its attribute count limit, the values go in as they are and the name is
    set as ``update_name`` sets it, with the same result (tested against the public path); any
    other span (another SDK, limits set) takes the public path.
    """
    bounded = getattr(span, "_attributes", None)
    if (
        type(bounded) is BoundedAttributes
        and bounded.max_value_len is None
        and (bounded.maxlen is None or len(bounded._dict) + len(attributes) <= bounded.maxlen)
        and (name is None or getattr(type(span), "update_name", None) is _SDK_UPDATE_NAME)
        and span.is_recording()
    ):
        lock = bounded._lock
        lock.acquire()
        try:
            bounded._dict.update(attributes)
        finally:
            lock.release()
        if name is not None:
            span._name = name
    else:
        if name is not None:
            span.update_name(name)
        span.set_attributes(attributes)


def outgoing_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus the trace headers of the current span (global propagator), for calls to other services."""
    headers = {} if headers is None else headers
    propagate.inject(headers)
    return headers


def current_ids() -> tuple[str, str] | None:
    """Hex ``(trace_id, span_id)`` of the current span when it is valid."""
    return span_ids(trace.get_current_span())


def span_ids(span: trace.Span | None) -> tuple[str, str] | None:
    """Hex ``(trace_id, span_id)`` of ``span`` when it is valid."""
    ctx = None if span is None else span.get_span_context()
    if ctx is None or not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def exemplar_labels(span: trace.Span) -> dict[str, str] | None:
    """The exemplar labels (hex ``trace_id``, ``span_id``) of ``span`` when it is sampled, else None."""
    ctx = span.get_span_context()
    if not ctx.trace_flags.sampled:
        return None
    # %-formatting: a third cheaper than format() on the request path.
    return {"trace_id": "%032x" % ctx.trace_id, "span_id": "%016x" % ctx.span_id}  # noqa: UP031
