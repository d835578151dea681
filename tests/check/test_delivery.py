"""app.cache_control, app.cdn and ops.load_balancing against real uvicorn apps, a real Prometheus
scraping them and a real nginx standing in for a CDN; each verdict both ways."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry

from stackwatch.instrumentation import instrument
from tests.fixtures.nginx import NginxServer
from tests.fixtures.procs import wait_until
from tests.fixtures.prometheus import PrometheusServer
from tests.fixtures.uvicorn import serve_app

from .conftest import run_check

ASSET = "/static/app.3f2a1c9e.js"
RIGHT = "public, max-age=31536000, immutable"


def service(asset_header: str, api_header: str | None, checks: bool = True) -> FastAPI:
    """An instrumented app: a fingerprinted asset, one API route, and /health/ready with one check."""
    app = FastAPI()

    @app.get("/static/{name}")
    async def asset(name: str, response: Response) -> str:
        response.headers["Cache-Control"] = asset_header
        return "console.log(1)"

    @app.get("/items")
    async def items(response: Response) -> list[int]:
        if api_header is not None:
            response.headers["Cache-Control"] = api_header
        return [1, 2]

    instrument(app, registry=CollectorRegistry(), traces=False, environ={},
               health_checks={"database": lambda: True} if checks else None)
    return app


def check(*argv: str) -> Any:
    return run_check("--format", "json", "--quiet", "yes", *argv)


@contextlib.contextmanager
def scraped(*urls: str) -> Iterator[PrometheusServer]:
    """A Prometheus scraping ``urls`` every second as instances of job ``api``."""
    targets = [u.removeprefix("http://") for u in urls]
    config = {"global": {"scrape_interval": "1s"},
              "scrape_configs": [{"job_name": "api", "static_configs": [{"targets": targets}]}]}
    with PrometheusServer(config) as prom:
        yield prom


def wait_for(prom: PrometheusServer, expr: str, count: int) -> None:
    wait_until(lambda: len(prom.query(expr)) >= count, 60, f"{count} series of {expr}", interval=0.2)


@pytest.mark.parametrize(("header", "problem"), [
    (RIGHT, None),
    ("public, immutable, max-age=63072000", None),
    ("public, max-age=31536000", "lacks immutable"),
    ("max-age=31536000, immutable", "lacks public"),
    ("public, max-age=86400, immutable", "lacks max-age>=31536000"),
    ("public, max-age=31536000, immutable, no-cache", "no-cache keeps it out of shared caches"),
    (None, "no Cache-Control header"),
])
def test_what_a_fingerprinted_asset_header_lacks(header: str | None, problem: str | None) -> None:
    from stackwatch.check.cache_control import static_asset_verdict

    assert static_asset_verdict(header) == problem


def test_static_asset_cache_control_is_judged_both_ways() -> None:
    with serve_app(service(RIGHT, "no-store")) as right, serve_app(service("public, max-age=3600", None)) as wrong:
        bad = check("--static-url", wrong + ASSET).finding("app.cache_control")
        good = check("--static-url", right + ASSET).finding("app.cache_control")
    assert bad["status"] == "fail"
    assert "lacks max-age>=31536000, immutable" in bad["evidence"]
    assert "immutable" in bad["fix"]
    # the static half passes; without Prometheus the API half is unknown, so the item is too
    assert good["status"] == "unknown"
    assert f"Cache-Control: {RIGHT}" in good["evidence"]
    assert "--prometheus-url" in good["fix"]


@pytest.mark.parametrize(("api_header", "expected"), [("public, max-age=60", "pass"), (None, "warn")])
def test_api_routes_must_say_how_they_may_be_cached(api_header: str | None, expected: str) -> None:
    with serve_app(service(RIGHT, api_header)) as url, scraped(url) as prom:
        with httpx.Client(base_url=url) as client:
            for _ in range(3):
                client.get("/items").raise_for_status()
                client.get(ASSET).raise_for_status()
        wait_for(prom, "http_server_responses_cache_control_total", 2)
        finding = check("--static-url", url + ASSET, "--prometheus-url", prom.url).finding("app.cache_control")
    assert finding["status"] == expected, finding
    if expected == "warn":
        assert "/items in api" in finding["evidence"]


CDN_LIKE = """
    server {{
        listen 127.0.0.1:{{port}};
        location / {{
            proxy_pass {origin};
            add_header X-Cache HIT;
            add_header Age 42;
        }}
    }}
"""


def test_a_cache_in_front_passes_the_cdn_item_and_the_origin_warns() -> None:
    with serve_app(service(RIGHT, None)) as origin, NginxServer(CDN_LIKE.format(origin=origin)) as cdn:
        through = check("--static-url", cdn.url + ASSET).finding("app.cdn")
        direct = check("--static-url", origin + ASSET).finding("app.cdn")
    assert through["status"] == "pass", through
    assert "x-cache: HIT" in through["evidence"] and "age: 42" in through["evidence"]
    assert direct["status"] == "warn"
    assert "static assets served from origin" in direct["evidence"]


def test_delivery_items_are_unknown_with_what_they_need() -> None:
    with serve_app(service(RIGHT, None)) as url:
        outcome = check("--app-url", url)
    for item, needs in (("app.cache_control", "--static-url"), ("app.cdn", "--static-url"),
                        ("ops.load_balancing", "--prometheus-url")):
        finding = outcome.finding(item)
        assert finding["status"] == "unknown"
        assert needs in finding["fix"]


RATE = "sum by (instance) (rate(http_server_request_duration_seconds_count[5m])) > 0"


def _spread(urls: list[str], prom: PrometheusServer, instances: int) -> None:
    """Requests to ``urls`` in turn (the balancer's doing) until Prometheus sees a rate on ``instances``."""
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(httpx.Client(base_url=u)) for u in urls]

        def sent() -> bool:
            for n in range(10 * len(clients)):
                clients[n % len(clients)].get("/items").raise_for_status()
            busy = "sum(rate(http_server_request_duration_seconds_count[5m])) > 1"  # over the check's guard
            return len(prom.query(RATE)) >= instances and bool(prom.query(busy)) and len(prom.query("up == 1")) >= 2

        wait_until(sent, 60, f"a request rate on {instances} instance(s)", interval=0.1)


def test_two_instances_sharing_the_traffic_pass_and_one_left_out_fails() -> None:
    with serve_app(service(RIGHT, "no-store")) as one, serve_app(service(RIGHT, "no-store")) as two, \
            scraped(one, two) as prom:
        _spread([one, two], prom, 2)
        balanced = check("--prometheus-url", prom.url, "--app-url", one).finding("ops.load_balancing")
        without_probe = check("--prometheus-url", prom.url).finding("ops.load_balancing")
    # planted: the balancer sends nothing to the second instance, and readiness consults no dependency
    with serve_app(service(RIGHT, "no-store", checks=False)) as one, \
            serve_app(service(RIGHT, "no-store", checks=False)) as two, scraped(one, two) as prom:
        _spread([one], prom, 1)
        left_out = check("--prometheus-url", prom.url, "--app-url", one).finding("ops.load_balancing")
    assert balanced["status"] == "pass", balanced
    assert "2 of 2 instances up" in balanced["evidence"]
    assert "/health/ready runs 1 dependency check(s), /health/live runs 0" in balanced["evidence"]
    assert without_probe["status"] == "unknown" and "--app-url" in without_probe["fix"]
    assert left_out["status"] == "fail", left_out["evidence"]
    assert f"{two.removeprefix('http://')} of api out of rotation" in left_out["evidence"]
    assert "/health/ready runs 0 dependency check(s)" in left_out["evidence"]
    assert "health_checks" in left_out["fix"]
