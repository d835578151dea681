"""Which tracer provider serves the request spans, cooperation with OpenTelemetry auto-instrumentation
and FastAPI's native telemetry, and the OTEL_* variables the OpenTelemetry SDK defines."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import fastapi
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from stackwatch.instrumentation import ConfigError, instrument, uninstrument

from .apps import make_app
from .fresh import run_python

SERVER_KIND = 2  # opentelemetry.proto Span.SPAN_KIND_SERVER
PARENT = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{PARENT}-00f067aa0ba902b7-01"


def with_downstream_call(app):
    """An endpoint that makes a child span the way httpx/redis/psycopg instrumentations do: global tracer."""

    @app.get("/downstream/{name}")
    async def downstream(name: str) -> dict[str, str]:
        with trace.get_tracer("shop.client").start_as_current_span("GET downstream", kind=SpanKind.CLIENT):
            pass
        return {"name": name}

    return app


async def drive(app, *paths: str, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [await client.get(p, headers=headers) for p in paths]


def exporting_provider(endpoint: str, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    return provider


@pytest.mark.parametrize("stackwatch_endpoint", [False, True])
async def test_a_global_provider_set_in_code_gets_the_request_spans(otlp_receiver, registry, stackwatch_endpoint):
    provider = exporting_provider(otlp_receiver.endpoint, "shop")
    trace.set_tracer_provider(provider)
    environ = {"OTEL_SERVICE_NAME": "other"}
    if stackwatch_endpoint:  # the same collector configured for stackwatch too: still one resource
        environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_receiver.endpoint
    app = with_downstream_call(make_app())
    instrumentation = instrument(app, registry=registry, environ=environ)
    assert instrumentation.tracer_provider is provider
    await drive(app, "/downstream/a")
    uninstrument(app)
    provider.force_flush()
    spans = otlp_receiver.wait_for(2)
    assert sorted(s.name for s in spans) == ["GET /downstream/{name}", "GET downstream"]
    server = next(s for s in spans if s.kind == SERVER_KIND)
    child = next(s for s in spans if s.name == "GET downstream")
    assert child.trace_id == server.trace_id and child.parent_span_id == server.span_id
    assert {r["service.name"] for r in otlp_receiver.resources()} == {"shop"}


async def test_an_injected_provider_wins_over_the_global_one(registry, provider, spans):
    other = InMemorySpanExporter()
    global_provider = TracerProvider()
    global_provider.add_span_processor(SimpleSpanProcessor(other))
    trace.set_tracer_provider(global_provider)
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ={})
    await drive(app, "/items/1")
    uninstrument(app)
    assert [s.name for s in spans.get_finished_spans()] == ["GET /items/{item_id}"]
    assert other.get_finished_spans() == ()


async def test_without_a_configured_provider_one_is_built_and_made_global(otlp_receiver, registry):
    environ = {"OTEL_SERVICE_NAME": "shop", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint}
    app = with_downstream_call(make_app())
    first = instrument(app, registry=registry, environ=environ)
    assert isinstance(first.tracer_provider, TracerProvider)
    assert trace.get_tracer_provider() is first.tracer_provider
    await drive(app, "/downstream/a", headers={"traceparent": TRACEPARENT})
    uninstrument(app)  # flushes; the global provider keeps serving the process
    spans = otlp_receiver.wait_for(2)
    server = next(s for s in spans if s.kind == SERVER_KIND)
    child = next(s for s in spans if s.name == "GET downstream")
    assert server.trace_id.hex() == PARENT and child.parent_span_id == server.span_id
    second_app = make_app()
    second = instrument(second_app, registry=registry, service_name="again", environ={})
    assert second.tracer_provider is first.tracer_provider  # one process, one provider, one resource
    await drive(second_app, "/items/2")
    uninstrument(second_app)
    otlp_receiver.wait_for(3)
    assert {r["service.name"] for r in otlp_receiver.resources()} == {"shop"}


async def test_otel_sdk_disabled_builds_no_provider(otlp_receiver, registry):
    app = make_app()
    instrumentation = instrument(app, registry=registry, environ={
        "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint})
    assert instrumentation.tracer is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    responses = await drive(app, "/items/1", "/boom")
    assert [r.status_code for r in responses] == [200, 500]
    uninstrument(app)
    assert registry.get_sample_value("http_server_request_duration_seconds_count", {
        "http_request_method": "GET", "http_route": "/items/{item_id}", "http_response_status_code": "200"}) == 1
    assert otlp_receiver.spans() == []


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])
async def test_an_unavailable_otlp_protocol_warns_and_serves(otlp_receiver, registry, caplog, protocol):
    app = make_app()
    with pytest.warns(RuntimeWarning, match=f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}.*NOT exported"):
        instrument(app, registry=registry, environ={
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint})
    assert [r.status_code for r in await drive(app, "/items/1")] == [200]
    uninstrument(app)
    assert otlp_receiver.spans() == []
    assert "http/protobuf" in caplog.text


async def test_the_otlp_protocol_http_protobuf_exports(otlp_receiver, registry):
    app = make_app()
    instrument(app, registry=registry, environ={"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                                                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint})
    await drive(app, "/items/1")
    uninstrument(app)
    assert [s.name for s in otlp_receiver.wait_for(1)] == ["GET /items/{item_id}"]


def test_a_bad_otlp_protocol_is_a_clear_error(registry):
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL: expected one of .* got 'udp'"):
        instrument(make_app(), registry=registry, environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"})


PROPAGATION = f"""
import asyncio, httpx
from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from stackwatch.instrumentation import instrument, outgoing_headers
from tests.instrumentation.apps import make_app
spans = InMemorySpanExporter(); provider = TracerProvider(); provider.add_span_processor(SimpleSpanProcessor(spans))
app = make_app(); instrument(app, tracer_provider=provider, environ={{}})
async def go():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url='http://t') as c:
        await c.get('/items/1', headers={{'traceparent': '{TRACEPARENT}'}})
asyncio.run(go())
token = context.attach(baggage.set_baggage('tenant', 'acme'))
print(format(spans.get_finished_spans()[0].context.trace_id, '032x'), sorted(outgoing_headers()))
"""


@pytest.mark.parametrize(("propagators", "linked", "outgoing"), [
    (None, True, "['baggage']"),  # the default: tracecontext,baggage
    ("tracecontext", True, "[]"),
    ("none", False, "[]"),
])
def test_otel_propagators_is_honoured(propagators, linked, outgoing):
    env = {} if propagators is None else {"OTEL_PROPAGATORS": propagators}
    trace_id, headers = run_python(PROPAGATION, **env).split(" ", 1)
    assert (trace_id == PARENT) is linked
    assert headers == outgoing


def server_spans(exporter: InMemorySpanExporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


async def test_a_mounted_fastapi_app_adds_no_second_trace(registry, spans, provider):
    trace.set_tracer_provider(provider)  # FastAPI's native telemetry starts spans once a global provider exists
    app = make_app()
    instrument(app, registry=registry, environ={})
    late = fastapi.FastAPI()  # mounted after instrument(), before the first request
    late.get("/ping")(lambda: "pong")
    app.mount("/late", late)
    responses = await drive(app, "/admin/reports/r-1", "/items/1", "/late/ping")
    assert [r.status_code for r in responses] == [200, 200, 200]
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["GET /admin/reports/{report_id}", "GET /items/{item_id}", "GET /late/ping"]
    uninstrument(app)
    await drive(app, "/admin/reports/r-1")  # FastAPI's own telemetry is back after uninstrument
    assert any(s.instrumentation_scope.name == "fastapi" for s in spans.get_finished_spans()[3:])


@pytest.fixture
def fastapi_instrumentor():
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    instrumentor = FastAPIInstrumentor()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def stackwatch_spans(exporter: InMemorySpanExporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "stackwatch.instrumentation"]


async def test_auto_instrumentation_before_stackwatch_keeps_one_server_span(registry, spans, provider,
                                                                            fastapi_instrumentor):
    """What ``opentelemetry-instrument`` does: a global provider, FastAPI patched before the app exists."""
    trace.set_tracer_provider(provider)
    fastapi_instrumentor.instrument()
    app = make_app()
    instrumentation = instrument(app, registry=registry, environ={})
    assert instrumentation.tracer_provider is provider
    await drive(app, "/items/1", "/admin/reports/r-1")
    assert stackwatch_spans(spans) == []
    servers = server_spans(spans)
    assert [s.name for s in servers] == ["GET /items/{item_id}", "GET /admin/reports/{report_id}"]
    assert servers[1].attributes["http.route"] == "/admin/reports/{report_id}"  # the template, not "/admin"
    assert len({s.context.trace_id for s in spans.get_finished_spans()}) == 2  # everything linked
    by_trace = {}
    for span in spans.get_finished_spans():
        by_trace.setdefault(span.context.trace_id, []).append((span.kind.name, span.name))
    direct, mounted = by_trace.values()
    assert sorted(k for k, _ in mounted) == sorted(k for k, _ in direct)  # the mount adds no span
    assert not any(name.startswith("GET /reports/") for _, name in mounted)  # the mounted app's own middleware
    exemplar = next(s.exemplar for f in registry.collect() if f.name == "http_server_request_duration_seconds"
                    for s in f.samples if s.exemplar and s.labels.get("http_route") == "/items/{item_id}")
    assert exemplar.labels["trace_id"] == format(servers[0].context.trace_id, "032x")
    uninstrument(app)
    spans.clear()
    await drive(app, "/admin/reports/r-1")  # OpenTelemetry's own setup is back as it was
    assert "GET /reports/{report_id}" in [s.name for s in spans.get_finished_spans()]


async def test_instrument_app_after_stackwatch_keeps_one_server_span(registry, spans, provider, caplog,
                                                                    fastapi_instrumentor):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ={})
    with caplog.at_level(logging.ERROR):
        fastapi_instrumentor.instrument_app(app, tracer_provider=provider)
        await drive(app, "/items/1")
    assert "Skipping FastAPI instrumentation" not in caplog.text
    assert stackwatch_spans(spans) == []
    assert [s.name for s in server_spans(spans)] == ["GET /items/{item_id}"]
    uninstrument(app)  # leaves OpenTelemetry's wrapper in place: its spans go on
    await drive(app, "/items/2")
    assert [s.name for s in server_spans(spans)] == ["GET /items/{item_id}"] * 2
    fastapi_instrumentor.uninstrument_app(app)


LAUNCHED = """
import asyncio, httpx
from stackwatch.instrumentation import instrument, uninstrument
from tests.instrumentation.apps import make_app
app = make_app(); instrument(app)
async def go():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url='http://t') as c:
        for path in ('/items/1', '/admin/reports/r-1'):
            assert (await c.get(path)).status_code == 200
asyncio.run(go())
uninstrument(app)
print(type(app.middleware_stack).__name__ if app.middleware_stack else 'rebuilt')
"""


def test_under_the_opentelemetry_instrument_launcher(otlp_receiver):
    launcher = str(Path(sys.executable).with_name("opentelemetry-instrument"))
    run_python(LAUNCHED, launcher=[launcher], OTEL_SERVICE_NAME="shop", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
               OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    spans = otlp_receiver.wait_for(2)
    servers = [s for s in spans if s.kind == SERVER_KIND]
    assert sorted(s.name for s in servers) == ["GET /admin/reports/{report_id}", "GET /items/{item_id}"]
    scopes = {scope.scope.name for r in otlp_receiver.requests for rs in r.resource_spans for scope in rs.scope_spans}
    assert "stackwatch.instrumentation" not in scopes  # OpenTelemetry's span is the request span
    assert "opentelemetry.instrumentation.fastapi" in scopes
    assert {r["service.name"] for r in otlp_receiver.resources()} == {"shop"}
    per_trace = {}
    for span in spans:
        per_trace[span.trace_id] = per_trace.get(span.trace_id, 0) + 1
    assert len(set(per_trace.values())) == 1  # through the mount: as many spans as without it


def test_valid_attributes_and_name_go_in_as_the_public_path_puts_them(provider):
    from opentelemetry.sdk.trace import SpanLimits

    from stackwatch.instrumentation.tracing import set_valid_attributes

    attributes = {"http.request.method": "GET", "http.response.status_code": 200, "http.route": "/items/{item_id}",
                  "url.path": "/items/1", "http.request.header.accept": ("*/*",)}
    tracer = provider.get_tracer("test")
    fast, public = tracer.start_span("fast"), tracer.start_span("public")
    fast.set_attribute("http.route", "/before")
    public.set_attribute("http.route", "/before")
    set_valid_attributes(fast, dict(attributes), "GET /items/{item_id}")
    public.update_name("GET /items/{item_id}")
    public.set_attributes(dict(attributes))
    fast.end()
    public.end()
    assert dict(fast.attributes) == dict(public.attributes) == attributes
    assert fast.name == public.name == "GET /items/{item_id}"
    set_valid_attributes(fast, {"late": "ignored"}, "late")  # an ended span takes nothing, as with the public path
    assert "late" not in fast.attributes and fast.name == "GET /items/{item_id}"
    # A length limit (the SDK truncates) or a span that is not the SDK's takes the public path.
    limited = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=3)).get_tracer("test").start_span("x")
    set_valid_attributes(limited, {"url.path": "/items/1"}, "GET /items")
    assert limited.attributes["url.path"] == "/it" and limited.name == "GET /items"

    class Renaming(type(fast)):  # type: ignore[misc]
        def update_name(self, name: str) -> None:
            super().update_name(name.lower())

    own = tracer.start_span("x")
    own.__class__ = Renaming
    set_valid_attributes(own, {"a": "b"}, "GET /Items")
    assert own.name == "get /items" and own.attributes["a"] == "b"
