"""Spans over OTLP/HTTP, Sentry events, a real uvicorn server, log correlation, unreachable backends."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from stackwatch.instrumentation import instrument, uninstrument

from .apps import make_app
from .fresh import run_python

SERVER_KIND = 2  # opentelemetry.proto Span.SPAN_KIND_SERVER


async def drive(app, *paths: str, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [await client.get(p, headers=headers) for p in paths]


async def test_spans_reach_an_otlp_receiver(otlp_receiver, registry):
    app = make_app()
    instrument(app, registry=registry, environ={"OTEL_SERVICE_NAME": "shop",
                                                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint})
    parent = "4bf92f3577b34da6a3ce929d0e0e4736"
    await drive(app, "/items/3", "/boom", "/health", headers={"traceparent": f"00-{parent}-00f067aa0ba902b7-01"})
    uninstrument(app)  # shuts the provider down, which flushes the batch
    spans = otlp_receiver.wait_for(2)
    assert sorted(s.name for s in spans) == ["GET /boom", "GET /items/{item_id}"]
    item = next(s for s in spans if s.name == "GET /items/{item_id}")
    assert item.kind == SERVER_KIND
    assert item.trace_id.hex() == parent
    assert item.parent_span_id.hex() == "00f067aa0ba902b7"
    attributes = {a.key: a.value for a in item.attributes}
    assert attributes["http.route"].string_value == "/items/{item_id}"
    assert attributes["http.response.status_code"].int_value == 200
    boom = next(s for s in spans if s.name == "GET /boom")
    assert boom.status.code == 2  # STATUS_CODE_ERROR
    assert {"service.name": "shop"}.items() <= otlp_receiver.resources()[0].items()


async def test_sampler_ratio_zero_exports_nothing_but_metrics_still_count(otlp_receiver, registry):
    app = make_app()
    instrument(app, registry=registry, service_name="quiet", otlp_endpoint=otlp_receiver.endpoint,
               sampler="parentbased_traceidratio", sampler_arg=0.0, environ={})
    await drive(app, *["/items/1"] * 20)
    uninstrument(app)
    assert otlp_receiver.spans() == []
    assert registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_request_method": "GET", "http_route": "/items/{item_id}", "http_response_status_code": "200"},
    ) == 20


async def test_unreachable_otlp_endpoint_changes_nothing_for_clients(closed_port, registry):
    app = make_app()
    instrument(app, registry=registry, otlp_endpoint=f"http://127.0.0.1:{closed_port}", environ={})
    started = time.monotonic()
    responses = await drive(app, *["/items/1"] * 200)
    elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 200
    assert elapsed < 30  # generous: the export runs on the batch thread, never in the request
    uninstrument(app)


async def test_sentry_events_carry_the_trace_id(sentry_receiver, registry, provider, spans):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, sentry_dsn=sentry_receiver.dsn,
               environ={"SENTRY_ENVIRONMENT": "test", "SENTRY_RELEASE": "shop@1.2.3"})
    responses = await drive(app, "/boom", "/unavailable", "/items/1")
    assert [r.status_code for r in responses] == [500, 503, 200]
    uninstrument(app)  # closes the client, flushing the queue
    events = sentry_receiver.wait_for_events(2)
    by_route = {e["tags"]["http.route"]: e for e in events}
    assert set(by_route) == {"/boom", "/unavailable"}
    finished = {s.name: s for s in spans.get_finished_spans()}
    boom = by_route["/boom"]
    assert boom["exception"]["values"][-1]["type"] == "RuntimeError"
    assert boom["environment"] == "test" and boom["release"] == "shop@1.2.3"
    assert boom["contexts"]["trace"]["trace_id"] == format(finished["GET /boom"].context.trace_id, "032x")
    assert boom["tags"]["otel.trace_id"] == boom["contexts"]["trace"]["trace_id"]
    unavailable = by_route["/unavailable"]
    assert unavailable["level"] == "error"
    assert "503" in unavailable["message"] or "503" in str(unavailable.get("logentry", ""))
    assert unavailable["contexts"]["trace"]["trace_id"] == format(finished["GET /unavailable"].context.trace_id, "032x")


async def test_unreachable_sentry_changes_nothing_for_clients(closed_port, registry):
    app = make_app()
    instrument(app, registry=registry, traces=False, sentry_dsn=f"http://public@127.0.0.1:{closed_port}/1", environ={})
    started = time.monotonic()
    responses = await drive(app, *["/boom"] * 20, *["/items/1"] * 20)
    assert [r.status_code for r in responses] == [500] * 20 + [200] * 20
    assert time.monotonic() - started < 30
    uninstrument(app)


async def test_log_records_carry_trace_and_span_ids(registry, provider, spans, caplog):
    app = make_app()
    logger = logging.getLogger("shop")

    @app.get("/logs")
    async def logs() -> str:
        logger.warning("inside")
        return "ok"

    instrument(app, registry=registry, tracer_provider=provider, environ={})
    with caplog.at_level(logging.WARNING, logger="shop"):
        await drive(app, "/logs")
        logger.warning("outside")
    inside, outside = [r for r in caplog.records if r.name == "shop"]
    span = spans.get_finished_spans()[0]
    assert inside.trace_id == format(span.context.trace_id, "032x")
    assert inside.span_id == format(span.context.span_id, "016x")
    assert inside.trace_sampled is True
    assert outside.trace_id == "0" * 32
    uninstrument(app)


def test_real_uvicorn_server(serve, registry, provider, spans):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ={})
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/items/5").json() == {"id": 5}
        assert client.get("/v1/users/2/orders").status_code == 200
        # uvicorn drops the keep-alive connection after an unhandled exception: use a fresh one
        assert httpx.get(f"{base}/boom", timeout=10).status_code == 500
        assert client.get("/health/live").status_code == 200
        scrape = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert scrape.status_code == 200
    assert 'http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/items/{item_id}"} 1' in scrape.text
    assert 'trace_id="' in scrape.text
    assert scrape.text.rstrip().endswith("# EOF")
    assert sorted(s.name for s in spans.get_finished_spans()) == ["GET /boom", "GET /items/{item_id}", "GET /v1/users/{user_id}/orders"]
    client_span = next(s for s in spans.get_finished_spans() if s.name == "GET /items/{item_id}")
    assert client_span.attributes["client.address"] == "127.0.0.1"


def test_metrics_on_a_separate_port(serve, registry):
    app = make_app()
    instrumentation = instrument(app, registry=registry, traces=False, metrics_port=0, metrics_addr="127.0.0.1",
                                 environ={})
    port = instrumentation.metrics_server.port
    with serve(app) as base:
        assert httpx.get(f"{base}/items/1").status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 404
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert 'http_route="/items/{item_id}"' in scrape.text
    uninstrument(app)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_without_a_dsn_sentry_is_not_even_imported():
    code = (
        "import sys, asyncio, httpx\n"
        "from stackwatch.instrumentation import instrument\n"
        "from tests.instrumentation.apps import make_app\n"
        "app = make_app(); instrument(app, environ={})\n"
        "async def go():\n"
        "    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url='http://t') as c:\n"
        "        assert (await c.get('/boom')).status_code == 500\n"
        "asyncio.run(go())\n"
        "print('sentry_sdk' in sys.modules)\n"
    )
    assert run_python(code) == "False"


async def test_each_app_keeps_its_own_sentry_client(sentry_receiver, registry):
    from prometheus_client import CollectorRegistry

    from tests.fixtures.sentry import SentryReceiver

    other = SentryReceiver()
    try:
        first, second = make_app(), make_app()
        instrument(first, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn,
                   environ={"SENTRY_ENVIRONMENT": "first"})
        instrument(second, registry=CollectorRegistry(), traces=False, sentry_dsn=other.dsn,
                   environ={"SENTRY_ENVIRONMENT": "second"})
        await drive(first, "/boom")
        uninstrument(first)  # closes the first app's client, not the second's
        await drive(second, "/boom")
        uninstrument(second)
        assert [e["environment"] for e in sentry_receiver.wait_for_events(1)] == ["first"]
        assert [e["environment"] for e in other.wait_for_events(1)] == ["second"]
    finally:
        other.close()


def test_a_trace_id_log_format_works_before_and_after_instrument():
    code = (
        "import io, logging\n"
        "stream = io.StringIO()\n"
        "handler = logging.StreamHandler(stream)\n"
        "handler.setFormatter(logging.Formatter('%(trace_id)s %(span_id)s %(trace_sampled)s %(message)s'))\n"
        "logging.basicConfig(level=logging.INFO, handlers=[handler])\n"
        "import stackwatch.instrumentation as sw\n"
        "logging.getLogger('shop').info('before')\n"
        "from tests.instrumentation.apps import make_app\n"
        "app = make_app(); sw.instrument(app, environ={}); sw.uninstrument(app)\n"
        "logging.getLogger('shop').info('after')\n"
        "def other(*args, **kwargs):  # another library's factory, installed over stackwatch's\n"
        "    record = ours(*args, **kwargs); record.other = True; return record\n"
        "ours = logging.getLogRecordFactory(); logging.setLogRecordFactory(other)\n"
        "logging.getLogger('shop').info('chained')\n"
        "print(repr(stream.getvalue()))\n"
    )
    zeros = f"{'0' * 32} {'0' * 16} False"
    assert run_python(code) == repr(f"{zeros} before\n{zeros} after\n{zeros} chained\n")
