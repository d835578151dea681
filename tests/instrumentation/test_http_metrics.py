"""Request/response body sizes, and URLs excluded from traces and metrics."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from stackwatch.instrumentation import ConfigError, instrument

from .test_middleware import client, routes_seen


def size(registry, which: str, method: str, route: str, status: str, sample: str = "sum") -> float | None:
    labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
    return registry.get_sample_value(f"http_server_{which}_body_size_bytes_{sample}", labels)


async def test_request_and_response_body_sizes(registry, clean_env):
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x" * (len(await request.body()) // 10))

    async def chunks():
        for _ in range(4):
            yield b"y" * 2500

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    instrument(app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c:
        assert len((await c.post("/upload", content=b"a" * 5000)).content) == 500
        assert len((await c.post("/upload", content=b"a" * 300)).content) == 30
        assert len((await c.get("/stream")).content) == 10000
    assert size(registry, "request", "POST", "/upload", "200") == 5300
    assert size(registry, "response", "POST", "/upload", "200") == 530
    assert size(registry, "response", "POST", "/upload", "200", "count") == 2
    assert registry.get_sample_value("http_server_response_body_size_bytes_bucket", {
        "http_request_method": "POST", "http_route": "/upload", "http_response_status_code": "200", "le": "100.0"}) == 1
    assert size(registry, "response", "GET", "/stream", "200") == 10000
    assert size(registry, "request", "GET", "/stream", "200") == 0


async def test_excluded_urls_are_neither_traced_nor_counted(registry, provider, spans):
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.get("/client/{cid}/info")
    async def info(cid: int) -> int:
        return cid

    @app.get("/items/{iid}")
    async def item(iid: int) -> int:
        return iid

    instrument(app, registry=registry, tracer_provider=provider,
               environ={"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "client/.*/info, /ping$"})
    async with client(app) as c:
        assert (await c.get("/ping")).json() == "pong"
        assert (await c.get("/client/7/info")).json() == 7
        assert (await c.get("/items/3")).json() == 3
        assert (await c.get("/ping/more")).status_code == 404  # "/ping$" does not match it
    assert routes_seen(registry) == {"/items/{iid}", "UNMATCHED"}
    assert sorted(s.name for s in spans.get_finished_spans()) == ["GET", "GET /items/{iid}"]


async def test_excluded_urls_keyword_and_the_generic_variable(registry):
    app = FastAPI()

    @app.get("/a")
    async def a() -> int:
        return 1

    @app.get("/b")
    async def b() -> int:
        return 2

    instrument(app, registry=registry, traces=False, excluded_urls=["^/a"],
               environ={"OTEL_PYTHON_EXCLUDED_URLS": "/b"})  # the keyword wins over the variables
    other = FastAPI()

    @other.get("/b")
    async def b2() -> int:
        return 2

    instrument(other, registry=registry, traces=False, environ={"OTEL_PYTHON_EXCLUDED_URLS": "/b"})
    async with client(app) as c, client(other) as o:
        await c.get("/a")
        await c.get("/b")
        await o.get("/b")
    assert registry.get_sample_value("http_server_request_duration_seconds_count", {
        "http_request_method": "GET", "http_route": "/b", "http_response_status_code": "200"}) == 1


def test_a_bad_excluded_url_pattern_is_named():
    with pytest.raises(ConfigError, match=r"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS: '\(unclosed' is not a regular expression"):
        instrument(FastAPI(), environ={"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "ok,(unclosed"})


def test_requests_on_several_threads_are_counted_exactly(registry, clean_env):
    """Loops on four threads serving one instrumented app at once (GIL switches forced every
    microsecond) lose no count and leave no request active: the middleware's updates share one
    lock per registry."""
    app = FastAPI()

    @app.get("/items/{iid}")
    async def item(iid: int) -> int:
        return iid

    instrument(app, registry=registry, traces=False, event_loop=False, environ=clean_env)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/items/1", "raw_path": b"/items/1", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"t")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    async def serve(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: asyncio.run(serve(300)), range(4)))
    finally:
        sys.setswitchinterval(switch)
    labels = {"http_request_method": "GET", "http_route": "/items/{iid}", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1200
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", labels) == 1200
    assert registry.get_sample_value("http_server_active_requests", {"http_request_method": "GET"}) == 0
    assert registry.get_sample_value("http_server_requests_cdn_total", {"http_route": "/items/{iid}",
                                                                        "cdn": "none"}) == 1200
