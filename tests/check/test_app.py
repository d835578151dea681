"""Application items against real Starlette apps served by uvicorn on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.check.conftest import run_check
from tests.fixtures.uvicorn import serve_app


def healthy_app() -> Starlette:
    registry = CollectorRegistry()
    duration = Histogram("http_server_request_duration_seconds", "Request duration.",
                         ["http_request_method", "http_route", "http_response_status_code"], registry=registry)
    for route in ("/orders", "/orders/{id}", "/health"):
        duration.labels("GET", route, "200").observe(0.02)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "checks": {"database": {"status": "ok"}}})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/health", health), Route("/metrics", metrics)],
                     middleware=[Middleware(GZipMiddleware, minimum_size=1024)])


def unhealthy_app() -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "fail", "checks": {"database": {"status": "fail", "error": "OperationalError"},
                                                          "redis": {"status": "ok"}}}, status_code=503)

    async def openapi(request: Request) -> Response:
        return JSONResponse({"paths": {f"/resource/{i}": {"get": {"summary": "x" * 40}} for i in range(50)}})

    return Starlette(routes=[Route("/health", health), Route("/openapi.json", openapi)])


def test_healthy_app_passes() -> None:
    with serve_app(healthy_app()) as url:
        outcome = run_check("--format", "json", "--app-url", url)
    for item in ("app.health", "app.compression", "app.metrics"):
        assert outcome.status(item) == "pass", outcome.finding(item)
    assert "Content-Encoding gzip" in outcome.finding("app.compression")["evidence"]
    assert outcome.code == 0


def test_red_health_uncompressed_responses_and_no_metrics_fail() -> None:
    with serve_app(unhealthy_app()) as url:
        outcome = run_check("--format", "json", "--app-url", url)
    health = outcome.finding("app.health")
    assert health["status"] == "fail" and "HTTP 503" in health["evidence"] and "failing: database" in \
        health["evidence"], health
    compression = outcome.finding("app.compression")
    assert compression["status"] == "fail" and "/openapi.json" in compression["evidence"], compression
    assert outcome.finding("app.metrics")["status"] == "fail"
    assert "HTTP 404" in outcome.finding("app.metrics")["evidence"]
    assert outcome.code == 1


def test_app_that_does_not_answer_fails_its_health_item() -> None:
    with serve_app(healthy_app()) as url:
        pass  # stopped: the port no longer answers
    outcome = run_check("--format", "json", "--app-url", url, "--timeout", "2")
    assert outcome.status("app.health") == "fail"
    assert outcome.status("app.compression") == "unknown"


def test_large_path_option_selects_the_compression_probe() -> None:
    with serve_app(unhealthy_app()) as url:
        outcome: Any = run_check("--format", "json", "--app-url", url, "--app-large-path", "/health")
    finding = outcome.finding("app.compression")
    assert finding["status"] == "unknown" and "--app-large-path" in finding["fix"]


def instrumented_app(redis_client: Any) -> Any:
    """A FastAPI service as the docs tell users to build it: stackwatch.instrumentation + gzip."""
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry as Registry

    from stackwatch.instrumentation import instrument, redis_check

    service = FastAPI(title="orders")
    service.add_middleware(GZipMiddleware, minimum_size=1024)
    for i in range(30):  # enough routes for an openapi.json over 1 KiB
        service.add_api_route(f"/orders/{i}/{{order_id}}", lambda order_id: {"id": order_id}, methods=["GET"])
    instrument(service, registry=Registry(), health_checks={"redis": redis_check(redis_client)},
               environ={}, service_name="orders")
    return service


def test_service_with_stackwatch_instrumentation_passes_and_its_failing_dependency_shows(
        redis_factory: Any) -> None:
    import urllib.request

    cache = redis_factory()
    with serve_app(instrumented_app(cache.client())) as url:
        for i in range(3):
            urllib.request.urlopen(f"{url}/orders/{i}/42", timeout=5).read()  # noqa: S310 - loopback
        good = run_check("--format", "json", "--app-url", url)
        cache.stop()  # the dependency goes away: /health must turn red and name it
        bad = run_check("--format", "json", "--app-url", url)
    for item in ("app.health", "app.compression", "app.metrics"):
        assert good.status(item) == "pass", good.finding(item)
    assert "/openapi.json" in good.finding("app.compression")["evidence"]
    health = bad.finding("app.health")
    assert health["status"] == "fail" and "failing: redis" in health["evidence"], health


def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    """Basic auth from --app-url goes to that host only, as curl does, not to where it redirects."""
    seen: list[str | None] = []

    async def elsewhere(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"status": "ok"})

    with serve_app(Starlette(routes=[Route("/health", elsewhere)])) as other:
        other_port = other.rsplit(":", 1)[1]

        async def moved(request: Request) -> Response:
            return Response(status_code=302, headers={"Location": f"http://localhost:{other_port}/health"})

        with serve_app(Starlette(routes=[Route("/health", moved)])) as url:
            outcome = run_check("--format", "json", "--app-url", url.replace("http://", "http://ops:s3cret-pw@"))
    assert outcome.status("app.health") == "pass", outcome.finding("app.health")
    assert seen == [None]
