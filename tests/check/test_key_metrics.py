"""Key metrics and monitoring tools (``app.latency``, ``app.error_ratio``, ``app.throughput``,
``app.tracing``, ``app.error_tracking``, ``app.apm``) judged by a real Prometheus scraping real
instrumented FastAPI apps served by uvicorn.

Two setups, each with its own Prometheus: a clean service (fast route, traces exported over OTLP,
Sentry on) and a broken one (a route taking over a second, a route answering 500, traces off, no
Sentry). Each route gets one request before the first scrape and a burst after it. A few seconds
of history read as a low rate over the rules' 5m window, so the check runs in-process with a lower
traffic guard (the thresholds judged stay as shipped); the command line's own path is exercised
by the test of the items' ``unknown`` listing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import fastapi
import httpx
import pytest
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry

from stackwatch.check import tooling
from stackwatch.check.model import Finding
from stackwatch.check.prometheus import PrometheusCheck
from stackwatch.check.runner import Budget
from stackwatch.instrumentation import instrument, uninstrument
from stackwatch.thresholds import HTTP, RATE_WINDOW
from tests.check.conftest import run_check
from tests.fixtures.otlp import OtlpReceiver
from tests.fixtures.procs import wait_until
from tests.fixtures.prometheus import PrometheusServer
from tests.fixtures.sentry import SentryReceiver
from tests.fixtures.uvicorn import serve_app

ITEMS = ("app.latency", "app.error_ratio", "app.throughput", "app.tracing", "app.error_tracking", "app.apm")
#: requests per route in the burst, and the traffic guard they clear over the 5m window
BURST = 20
GUARDED = dataclasses.replace(HTTP, min_requests_per_second=0.02)
SLOW_SECONDS = HTTP.latency_p99_seconds + 0.2


def _app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/items")
    async def items() -> dict[str, int]:
        return {"count": 3}

    @app.get("/report")
    async def report() -> dict[str, str]:
        await asyncio.sleep(SLOW_SECONDS)
        return {"report": "done"}

    @app.get("/fail")
    async def fail() -> PlainTextResponse:
        return PlainTextResponse("database unavailable", status_code=500)

    return app


async def _requests(base: str, paths: list[str]) -> None:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for start in range(0, len(paths), 200):
            await asyncio.gather(*(client.get(p) for p in paths[start:start + 200]))


@dataclass
class Setup:
    base: str
    prometheus: PrometheusServer
    findings: dict[str, Finding]

    def finding(self, item: str) -> Finding:
        return self.findings[item]


class _Service:
    """One instrumented app served by uvicorn and the Prometheus that scrapes it."""

    def __init__(self, stack: ExitStack, job: str, routes: tuple[str, ...], **settings: object) -> None:
        self.job, self.routes = job, routes
        app = _app()
        instrument(app, registry=CollectorRegistry(), environ={}, service_name=job, **settings)
        stack.callback(uninstrument, app)
        self.base = stack.enter_context(serve_app(app))
        asyncio.run(_requests(self.base, list(routes)))  # the series exist before Prometheus's first scrape
        self.prom = stack.enter_context(PrometheusServer({"global": {"scrape_interval": "1s"}, "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [self.base.removeprefix("http://")]}]}]}))
        self.count = f'http_server_request_duration_seconds_count{{job="{job}"}}'

    def scraped(self) -> bool:
        return len(self.prom.query(self.count)) >= len(self.routes)

    def burst(self) -> list[str]:
        return [route for route in self.routes for _ in range(BURST)]

    def busy(self) -> bool:
        busy = f"sum by (http_route) (rate({self.count}[{RATE_WINDOW}])) > {GUARDED.min_requests_per_second}"
        return len(self.prom.query(busy)) >= len(self.routes)

    def setup(self) -> Setup:
        findings = {f.item.id: f for f in PrometheusCheck(self.prom.url, http=GUARDED).run(Budget(30, 5))}
        return Setup(self.base, self.prom, findings)


async def _bursts(services: tuple[_Service, ...]) -> None:
    await asyncio.gather(*(_requests(s.base, s.burst()) for s in services))


@pytest.fixture(scope="module")
def setups() -> Iterator[tuple[Setup, Setup]]:
    with ExitStack() as stack:
        otlp, sentry = OtlpReceiver(), SentryReceiver()
        stack.callback(otlp.close)
        stack.callback(sentry.close)
        services = (_Service(stack, "shop", ("/items",), otlp_endpoint=otlp.endpoint, sentry_dsn=sentry.dsn),
                    _Service(stack, "legacy", ("/items", "/report", "/fail"), traces=False))
        # both Prometheus servers start scraping together (their first scrape waits for discovery)
        wait_until(lambda: all(s.scraped() for s in services), 30, "a scrape of each service")
        asyncio.run(_bursts(services))
        wait_until(lambda: all(s.busy() for s in services), 30, "the bursts' rates in Prometheus")
        yield services[0].setup(), services[1].setup()


@pytest.mark.parametrize("item", ITEMS)
def test_a_clean_service_passes(setups: tuple[Setup, Setup], item: str) -> None:
    clean, _ = setups
    assert clean.finding(item).status.value == "pass", clean.finding(item)


def test_the_clean_services_evidence(setups: tuple[Setup, Setup]) -> None:
    clean = setups[0]
    assert "shop 0.0" in clean.finding("app.latency").evidence  # p50/p95/p99 in seconds
    assert "shop 0.0%" in clean.finding("app.error_ratio").evidence
    assert "shop: traces exported over OTLP" in clean.finding("app.tracing").evidence
    assert "shop: errors reported to sentry" in clean.finding("app.error_tracking").evidence
    assert "shop: traces exported over OTLP" in clean.finding("app.apm").evidence


def test_a_slow_route_fails_the_latency(setups: tuple[Setup, Setup]) -> None:
    finding = setups[1].finding("app.latency")
    assert finding.status.value == "fail" and "over it: legacy" in finding.evidence, finding
    assert "routes with p99 over it: /report in legacy" in finding.evidence, finding


def test_a_failing_route_fails_the_error_ratio(setups: tuple[Setup, Setup]) -> None:
    finding = setups[1].finding("app.error_ratio")
    assert finding.status.value == "fail" and "legacy 33." in finding.evidence, finding
    assert "routes over it: /fail in legacy 100%" in finding.evidence, finding


def test_throughput_is_information(setups: tuple[Setup, Setup]) -> None:
    finding = setups[1].finding("app.throughput")
    assert finding.status.value == "pass" and "legacy" in finding.evidence and "req/s" in finding.evidence


@pytest.mark.parametrize(("item", "says"), [("app.tracing", "legacy: tracing off"),
                                            ("app.error_tracking", "legacy: no error tracking"),
                                            ("app.apm", "legacy: no APM agent and no traces exported")])
def test_missing_tools_fail(setups: tuple[Setup, Setup], item: str, says: str) -> None:
    finding = setups[1].finding(item)
    assert finding.status.value == "fail" and says in finding.evidence and finding.fix, finding


def test_without_prometheus_they_are_unknown_naming_the_flag(setups: tuple[Setup, Setup]) -> None:
    outcome = run_check("--format", "json", "--app-url", setups[0].base)
    for item in (*ITEMS, "pg.read_share"):
        finding = outcome.finding(item)
        assert finding["status"] == "unknown" and "--prometheus-url" in finding["fix"], finding


@pytest.mark.parametrize(("labels", "tracing", "apm"), [
    ({"tracing": "true", "traces_exporter": "otlp", "apm": "none"}, "pass", "pass"),
    ({"tracing": "true", "traces_exporter": "service", "apm": "none"}, "pass", "pass"),
    ({"tracing": "true", "traces_exporter": "none", "apm": "none"}, "warn", "fail"),
    ({"tracing": "true", "traces_exporter": "none", "apm": "datadog"}, "warn", "pass"),
    ({"tracing": "false", "traces_exporter": "none", "apm": "sentry"}, "fail", "pass"),
])
def test_verdicts_of_each_label_set(labels: dict[str, str], tracing: str, apm: str) -> None:
    """The label sets the live setups above do not produce (spans exported nowhere, agents only)."""
    assert tooling._tracing(labels)[0].value == tracing
    assert tooling._apm(labels)[0].value == apm
