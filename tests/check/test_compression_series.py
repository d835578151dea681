"""``app.compression`` from the services' ``http_server_responses_content_encoding_total``: two real
instrumented FastAPI apps serving the same JSON report of over 1 KiB, one without GZipMiddleware
(planted) and its twin with it, and a real Prometheus scraping both as jobs ``plain`` and
``gzipped``. The check runs as the traffic arrives: before any (no series), after the twin's,
after both's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware.gzip import GZipMiddleware

from stackwatch.instrumentation import instrument
from stackwatch.thresholds import HTTP
from tests.check.conftest import Outcome
from tests.check.test_delivery import check, wait_for
from tests.fixtures.procs import wait_until
from tests.fixtures.prometheus import PrometheusServer
from tests.fixtures.uvicorn import serve_app

#: the instrumentation's family (a contract: the alert and the dashboards read it too)
CONTENT_ENCODING_FAMILY = "http_server_responses_content_encoding_total"
#: a JSON body well over the size where gzip pays (1 KiB)
REPORT = [{"id": i, "name": f"order {i}", "status": "shipped"} for i in range(80)]


def reports(gzip: bool) -> FastAPI:
    """An instrumented service whose one route serves :data:`REPORT`; few routes, so its
    /openapi.json is under 1 KiB and the probe falls back to /metrics (gzipped by the instrumentation)."""
    app = FastAPI()

    @app.get("/reports")
    async def report() -> list[dict[str, Any]]:
        return REPORT

    if gzip:
        app.add_middleware(GZipMiddleware, minimum_size=HTTP.compression_min_bytes)
    instrument(app, registry=CollectorRegistry(), traces=False, environ={})
    return app


def _traffic(url: str) -> None:
    with httpx.Client(base_url=url) as client:  # asks for gzip, as browsers and httpx do
        for _ in range(3):
            assert len(client.get("/reports").raise_for_status().content) > HTTP.compression_min_bytes


@pytest.fixture(scope="module")
def outcomes() -> Iterator[dict[str, Outcome]]:
    found: dict[str, Outcome] = {}
    with serve_app(reports(gzip=False)) as plain, serve_app(reports(gzip=True)) as gzipped:
        config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [url.removeprefix("http://")]}]}
            for job, url in (("plain", plain), ("gzipped", gzipped))]}
        with PrometheusServer(config) as prom:
            wait_until(lambda: len(prom.query("up == 1")) >= 2, 60, "both services scraped", interval=0.2)
            found["no series"] = check("--prometheus-url", prom.url)
            _traffic(gzipped)
            wait_for(prom, CONTENT_ENCODING_FAMILY, 1)
            found["twin"] = check("--prometheus-url", prom.url)
            found["twin probed"] = check("--prometheus-url", prom.url, "--app-url", gzipped)
            found["probe fails"] = check("--prometheus-url", prom.url, "--app-url", plain, "--app-large-path", "/reports")
            _traffic(plain)
            wait_for(prom, CONTENT_ENCODING_FAMILY, 2)
            found["planted"] = check("--prometheus-url", prom.url)
            found["planted probed"] = check("--prometheus-url", prom.url, "--app-url", plain)
            found["probe alone"] = check("--app-url", plain)
    yield found


def test_no_series_in_the_window_is_unknown_naming_the_family(outcomes: dict[str, Outcome]) -> None:
    finding = outcomes["no series"].finding("app.compression")
    assert finding["status"] == "unknown", finding
    assert f"no {CONTENT_ENCODING_FAMILY} in the last 5m" in finding["evidence"]
    assert "stackwatch.instrumentation" in finding["fix"]


def test_a_route_without_gzip_fails_naming_it_and_its_gzip_twin_passes(outcomes: dict[str, Outcome]) -> None:
    planted = outcomes["planted"].finding("app.compression")
    assert planted["status"] == "fail", planted
    assert "1 of 2 routes sent under 90%" in planted["evidence"] and "/reports in plain (0% encoded)" in planted["evidence"]
    assert "in gzipped" not in planted["evidence"]
    assert "in Prometheus; no --app-url" in planted["evidence"]
    assert f"GZipMiddleware, minimum_size={HTTP.compression_min_bytes}" in planted["fix"]
    for twin in (outcomes["twin"], outcomes["twin probed"]):
        finding = twin.finding("app.compression")
        assert finding["status"] == "pass", finding
        assert "1 route(s) with compressible responses in the last 5m, each" in finding["evidence"]


def test_a_passing_probe_does_not_hide_an_uncompressed_route(outcomes: dict[str, Outcome]) -> None:
    """The probe sees /metrics gzipped and passes on its own; the series see /reports go out
    uncompressed, and with both sources the item fails, the evidence saying which one saw it."""
    alone = outcomes["probe alone"].finding("app.compression")
    assert alone["status"] == "pass" and "GET /metrics" in alone["evidence"], alone
    both = outcomes["planted probed"].finding("app.compression")
    assert both["status"] == "fail", both
    assert "probe: GET /metrics" in both["evidence"] and "Content-Encoding gzip" in both["evidence"]
    assert f"{CONTENT_ENCODING_FAMILY}: 1 of 2 routes" in both["evidence"]
    assert "/reports in plain (0% encoded)" in both["evidence"]
    assert "GZipMiddleware" in both["fix"]


def test_what_the_probe_sees_fails_the_item_with_prometheus_given(outcomes: dict[str, Outcome]) -> None:
    """The other way round: the probe gets /reports uncompressed (Prometheus may not hold that
    response yet), and the evidence names the probe."""
    finding = outcomes["probe fails"].finding("app.compression")
    assert finding["status"] == "fail", finding
    assert finding["evidence"].startswith("probe: GET /reports") and "Content-Encoding identity" in finding["evidence"]
    assert "GZipMiddleware" in finding["fix"]
