"""Event-loop lag and blocking attributed to routes, through a real uvicorn server."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from stackwatch.instrumentation import instrument
from tests.fixtures.uvicorn import serve_app


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()  # type: ignore[no-any-return]


def _samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = _get(f"{base}/metrics").decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _blocked(samples: dict, route: str) -> float | None:
    return samples.get(("http_server_event_loop_blocked_seconds_total", (("http_route", route),)))


def test_a_route_that_blocks_the_loop_is_named_and_one_that_awaits_is_not(registry, clean_env):
    app = FastAPI()

    @app.get("/report/{report_id}")
    async def report(report_id: int) -> dict[str, int]:
        time.sleep(0.3)  # the pitfall: synchronous work in an async endpoint
        return {"id": report_id}

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(0.3)  # slow too, but the loop serves others meanwhile
        return {"ok": True}

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve_app(app) as base:
        _get(f"{base}/slow")
        quiet = _samples(base)
        # Both routes exist on /metrics after their first request; only the lag has samples yet.
        assert _blocked(quiet, "/slow") == 0
        assert quiet[("python_event_loop_lag_seconds_count", ())] >= 1
        with ThreadPoolExecutor(4) as pool:  # awaiting requests run while the blocking ones hold the loop
            list(pool.map(_get, [f"{base}/slow", f"{base}/report/1", f"{base}/slow", f"{base}/report/2"]))
        samples = _samples(base)
    blocked = _blocked(samples, "/report/{report_id}")
    assert blocked is not None and 0.4 <= blocked <= 1.2, samples
    assert _blocked(samples, "/slow") == 0
    # The lag histogram saw the stall: a heartbeat at least 250 ms late.
    count = samples[("python_event_loop_lag_seconds_count", ())]
    assert samples[("python_event_loop_lag_seconds_bucket", (("le", "0.1"),))] <= count - 1


def test_blocking_below_an_http_middleware_is_attributed_too(registry, clean_env):
    app = FastAPI()

    @app.middleware("http")  # BaseHTTPMiddleware: the route runs in a task of its own
    async def tag(request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers["x-tagged"] = "1"
        return response

    @app.get("/hash")
    async def hash_() -> dict[str, bool]:
        time.sleep(0.3)
        return {"ok": True}

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve_app(app) as base:
        _get(f"{base}/hash")
        samples = _samples(base)
    blocked = _blocked(samples, "/hash")
    assert blocked is not None and 0.2 <= blocked <= 0.6, samples


def test_the_watchdog_waits_while_no_request_is_in_flight_and_wakes_for_the_next(registry):
    from stackwatch.instrumentation.event_loop import LoopWatch
    from stackwatch.instrumentation.metrics import get_metrics
    from stackwatch.instrumentation.routes import RouteTemplates

    async def until(condition, seconds: float) -> bool:
        for _ in range(int(seconds / 0.01)):
            if condition():
                return True
            await asyncio.sleep(0.01)
        return condition()

    async def scenario() -> tuple[bool, bool, bool]:
        watch = LoopWatch(get_metrics(registry), RouteTemplates(), 0.1)
        token = watch.enter({}, None, "")
        monitor = token[0]
        watch.leave(token)
        idle = await until(lambda: monitor.idle, 1.0)  # nothing to charge a stall to: no polling
        token = watch.enter({}, None, "")
        signalled = monitor.wake.is_set() and not monitor.idle  # the next request wakes it, once
        watch.leave(token)
        # It ran at once (clearing the flag), looked an interval later and waits again: not after its
        # once-a-second look.
        woken = await until(lambda: not monitor.wake.is_set() and monitor.idle, 0.5)
        return idle, signalled, woken

    assert asyncio.run(scenario()) == (True, True, True)
