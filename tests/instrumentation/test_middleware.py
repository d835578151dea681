"""RED metrics, routes, spans and endpoints of an instrumented FastAPI app, driven through ASGI."""

from __future__ import annotations

import contextlib
import random
import string

import httpx
import pytest
from fastapi import WebSocket
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stackwatch.instrumentation import instrument, uninstrument

from .apps import make_app

DURATION = "http_server_request_duration_seconds"


def client(app, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def count(registry: CollectorRegistry, method: str, route: str, status: str) -> float | None:
    return registry.get_sample_value(
        f"{DURATION}_count",
        {"http_request_method": method, "http_route": route, "http_response_status_code": status},
    )


def routes_seen(registry: CollectorRegistry) -> set[str]:
    return {
        s.labels["http_route"]
        for family in registry.collect()
        if family.name == DURATION
        for s in family.samples
        if s.name.endswith("_count")
    }


async def test_red_metrics_use_route_templates(registry, provider, clean_env):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    async with client(app) as c:
        assert (await c.get("/items/1")).status_code == 200
        assert (await c.get("/items/2")).status_code == 200
        assert (await c.post("/items")).status_code == 201
        assert (await c.get("/v1/users/7/orders")).status_code == 200
        assert (await c.get("/admin/reports/r-9")).status_code == 200
        assert (await c.get("/sync/bob")).status_code == 200
        assert (await c.get("/boom")).status_code == 500
        assert (await c.get("/unavailable")).status_code == 503
        assert (await c.delete("/items/3")).status_code == 405
    assert count(registry, "GET", "/items/{item_id}", "200") == 2
    assert count(registry, "POST", "/items", "201") == 1
    assert count(registry, "GET", "/v1/users/{user_id}/orders", "200") == 1
    assert count(registry, "GET", "/admin/reports/{report_id}", "200") == 1
    assert count(registry, "GET", "/sync/{name}", "200") == 1
    assert count(registry, "GET", "/boom", "500") == 1
    assert count(registry, "GET", "/unavailable", "503") == 1
    assert count(registry, "DELETE", "/items/{item_id}", "405") == 1
    assert registry.get_sample_value("http_server_active_requests", {"http_request_method": "GET"}) == 0


async def test_root_path_is_not_part_of_the_route(registry, provider, clean_env):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    async with client(app, root_path="/api") as c:
        assert (await c.get("/api/items/5")).status_code == 200
        assert (await c.get("/api/metrics")).status_code == 200
    assert count(registry, "GET", "/items/{item_id}", "200") == 1


async def test_ten_thousand_random_paths_share_one_series(registry, clean_env):
    app = make_app()
    instrument(app, registry=registry, traces=False, environ=clean_env)
    rng = random.Random(4)
    async with client(app) as c:
        for _ in range(10_000):
            path = "/" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))
            assert (await c.get(path)).status_code == 404
    assert routes_seen(registry) == {"UNMATCHED"}
    assert count(registry, "GET", "UNMATCHED", "404") == 10_000


async def test_unknown_methods_are_other(registry, clean_env):
    app = make_app()
    instrument(app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c:
        await c.request("FOO", "/items/1")
    assert count(registry, "_OTHER", "/items/{item_id}", "405") == 1


async def test_one_server_span_per_request_with_semconv_attributes(registry, provider, spans, clean_env):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    parent_trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{parent_trace}-b7ad6b7169203331-01"}
    async with client(app) as c:
        await c.get("/items/42", headers=headers)
        await c.get("/boom")
        await c.get("/health")
        await c.get("/metrics")
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["GET /items/{item_id}", "GET /boom"]
    ok, boom = finished
    assert format(ok.context.trace_id, "032x") == parent_trace
    assert format(ok.parent.span_id, "016x") == "b7ad6b7169203331"
    assert ok.attributes["http.route"] == "/items/{item_id}"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.attributes["http.request.method"] == "GET"
    assert ok.attributes["url.path"] == "/items/42"
    assert boom.attributes["http.response.status_code"] == 500
    assert boom.attributes["error.type"] == "RuntimeError"
    assert boom.status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in boom.events)


async def test_exemplars_carry_the_trace_of_sampled_requests(registry, provider, spans, clean_env):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    async with client(app) as c:
        await c.get("/items/1")
        response = await c.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    span = spans.get_finished_spans()[0]
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    assert f'# {{span_id="{span_id}",trace_id="{trace_id}"}}' in response.text
    plain = (await client(app).get("/metrics")).text
    assert "# {" not in plain and plain.startswith("# HELP")
    assert any(f.name == "http_server_request_duration_seconds" for f in text_string_to_metric_families(plain))


async def test_unsampled_requests_have_no_exemplar(registry, clean_env):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    app = make_app()
    instrument(app, registry=registry, tracer_provider=TracerProvider(sampler=ALWAYS_OFF), environ=clean_env)
    async with client(app) as c:
        await c.get("/items/1")
        text = (await c.get("/metrics", headers={"accept": "application/openmetrics-text"})).text
    assert "trace_id" not in text
    assert count(registry, "GET", "/items/{item_id}", "200") == 1


async def test_instrument_twice_is_harmless_and_uninstrument_restores(registry, provider, spans, clean_env):
    app = make_app()
    first = instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    assert instrument(app, registry=registry, tracer_provider=provider, environ=clean_env) is first
    async with client(app) as c:
        await c.get("/items/1")
    assert count(registry, "GET", "/items/{item_id}", "200") == 1
    assert len(spans.get_finished_spans()) == 1

    uninstrument(app)
    uninstrument(app)
    async with client(app) as c:
        assert (await c.get("/items/1")).status_code == 200
        assert (await c.get("/metrics")).status_code == 404
        assert (await c.get("/health")).status_code == 404
    assert count(registry, "GET", "/items/{item_id}", "200") == 1
    assert len(spans.get_finished_spans()) == 1
    assert "build_middleware_stack" not in app.__dict__

    instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    async with client(app) as c:
        await c.get("/items/1")
    assert count(registry, "GET", "/items/{item_id}", "200") == 2


async def test_instrumenting_an_app_that_already_served(registry, clean_env):
    app = make_app()
    async with client(app) as c:
        await c.get("/items/1")
        instrument(app, registry=registry, traces=False, environ=clean_env)
        await c.get("/items/1")
    assert count(registry, "GET", "/items/{item_id}", "200") == 1


async def test_hooks_are_called(registry, provider, spans, clean_env):
    seen = []

    def on_request(span, scope):
        span.set_attribute("tenant", "acme")
        seen.append(scope["path"])

    def on_response(span, scope, message):
        span.set_attribute("app.content_type", dict(message["headers"])[b"content-type"].decode())
        seen.append(message["status"])

    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, server_request_hook=on_request,
               server_response_hook=on_response, environ=clean_env)
    async with client(app) as c:
        await c.get("/items/9")
    assert seen == ["/items/9", 200]
    attributes = spans.get_finished_spans()[0].attributes
    assert attributes["tenant"] == "acme"
    assert attributes["app.content_type"] == "application/json"


async def test_lifespan_passes_through(registry, clean_env):
    started = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        started.append(True)
        yield

    app = make_app(lifespan=lifespan)
    instrument(app, registry=registry, traces=False, environ=clean_env)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert started == [True]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_plain_starlette_mounts_and_routes(registry, clean_env):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def show(request):
        return PlainTextResponse(request.path_params["name"])

    inner = [Route("/files/{name}", show)]
    app = Starlette(routes=[Route("/hello/{name}", show), Mount("/static", routes=inner)])
    instrument(app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c:
        assert (await c.get("/hello/x")).status_code == 200
        assert (await c.get("/static/files/y")).status_code == 200
        assert (await c.get("/static/nothing")).status_code == 404
    assert count(registry, "GET", "/hello/{name}", "200") == 1
    assert count(registry, "GET", "/static/files/{name}", "200") == 1
    assert routes_seen(registry) == {"/hello/{name}", "/static/files/{name}", "/static"}


async def test_a_failing_hook_does_not_fail_the_request(registry, provider, spans, caplog):
    def broken(span, scope, message=None):
        raise ValueError("hook bug")

    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, server_request_hook=broken,
               server_response_hook=broken, environ={})
    async with client(app) as c:
        assert (await c.get("/items/1")).status_code == 200
    assert [s.name for s in spans.get_finished_spans()] == ["GET /items/{item_id}"]
    assert "hook" in caplog.text and "failed" in caplog.text


def test_non_starlette_apps_are_refused(registry):
    async def bare(scope, receive, send):
        pass

    with pytest.raises(TypeError, match="Starlette or FastAPI"):
        instrument(bare, registry=registry)


async def test_a_websocket_connection_gets_one_span_and_metrics(registry, provider, spans, clean_env):
    app = make_app()
    open_during: list[float | None] = []

    @app.websocket("/ws/{room}")
    async def echo(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        open_during.append(registry.get_sample_value("http_server_active_websocket_connections"))
        await websocket.send_text(await websocket.receive_text())
        await websocket.close(code=4000)

    instrument(app, registry=registry, tracer_provider=provider, environ=clean_env)
    for room in ("a", "b"):
        incoming = iter([{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "ping"}])
        sent = []

        async def receive(incoming=incoming):
            return next(incoming)

        async def send(message, sent=sent):
            sent.append(message)

        scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": f"/ws/{room}", "raw_path": b"/ws/x",
                 "root_path": "", "query_string": b"", "headers": [], "scheme": "ws", "client": ("127.0.0.1", 1),
                 "server": ("t", 80), "subprotocols": [], "state": {}}
        await app(scope, receive, send)
        assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
        assert sent[1]["text"] == "ping"
    assert open_during == [1.0, 1.0]
    assert registry.get_sample_value("http_server_active_websocket_connections") == 0
    assert registry.get_sample_value("http_server_websocket_connection_duration_seconds_count",
                                     {"http_route": "/ws/{room}"}) == 2
    first, second = spans.get_finished_spans()
    assert first.name == "WEBSOCKET /ws/{room}" and first.kind.name == "SERVER"
    assert dict(first.attributes) == {"url.path": "/ws/a", "url.scheme": "ws", "client.address": "127.0.0.1",
                                      "http.route": "/ws/{room}", "websocket.close.code": 4000}
    assert first.context.trace_id != second.context.trace_id
    assert routes_seen(registry) == set()  # not counted as HTTP requests


async def test_mount_path_parameters_stay_templates(registry, clean_env):
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def show(request):
        return PlainTextResponse("x")

    tenants = [Route("/items/{name}", show), Mount("/a/{section}", routes=[Route("/{page}", show)])]
    app = Starlette(routes=[Mount("/tenants/{tenant}", routes=tenants)])
    instrument(app, registry=registry, traces=False, environ=clean_env)
    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: str) -> str:
        return report_id

    fastapi_app = FastAPI()
    fastapi_app.mount("/orgs/{org}", sub)
    instrument(fastapi_app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c, client(fastapi_app) as f:
        for i in range(50):
            assert (await c.get(f"/tenants/t{i}/items/{i}")).status_code == 200
            assert (await c.get(f"/tenants/t{i}/nothing")).status_code == 404
            assert (await f.get(f"/orgs/o{i}/reports/{i}")).status_code == 200
        assert (await c.get("/tenants/t1/a/s1/p1")).status_code == 200  # nested mounts
    assert routes_seen(registry) == {
        "/tenants/{tenant}/items/{name}",
        "/tenants/{tenant}",
        "/orgs/{org}/reports/{report_id}",
        "/tenants/{tenant}/a/{section}/{page}",
    }
    assert count(registry, "GET", "/tenants/{tenant}/items/{name}", "200") == 50
