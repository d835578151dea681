"""stackwatch's /health and /metrics never replace routes the app declares itself."""

from __future__ import annotations

import warnings

import pytest
from fastapi import APIRouter, FastAPI

from stackwatch.instrumentation import instrument

from .test_middleware import client


async def test_the_apps_own_health_and_metrics_routes_win(registry, clean_env, caplog):
    app = FastAPI()
    instrument(app, registry=registry, traces=False, environ=clean_env, metrics_path="/internal/metrics")

    @app.get("/health")  # declared after instrument(), as most apps do
    async def own_health() -> dict[str, str]:
        return {"mine": "yes"}

    ops = APIRouter(prefix="/health")

    @ops.get("/ready")
    async def own_ready() -> str:
        return "ready, says the app"

    app.include_router(ops)

    @app.get("/metrics")
    async def own_metrics() -> str:
        return "the app's metrics"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with client(app) as c:
            assert (await c.get("/health")).json() == {"mine": "yes"}
            assert (await c.get("/health/ready")).json() == "ready, says the app"
            assert (await c.get("/metrics")).json() == "the app's metrics"
            assert (await c.get("/health/live")).json()["status"] == "ok"  # not declared by the app
            scrape = await c.get("/internal/metrics")
    assert scrape.status_code == 200 and "http_server_request_duration_seconds" in scrape.text
    messages = [str(w.message) for w in caught]
    assert any("own route for /health:" in m and "STACKWATCH_HEALTH_PATH" in m for m in messages)
    assert any("own route for /health/ready:" in m and "readiness_path=" in m for m in messages)
    assert not any("/metrics:" in m or "/health/live" in m for m in messages)
    assert "own route for /health:" in caplog.text


async def test_no_warning_without_conflicts_and_static_mount_at_root_does_not_count(registry, clean_env, tmp_path):
    from starlette.staticfiles import StaticFiles

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    app.mount("/", StaticFiles(directory=tmp_path, html=True))
    instrument(app, registry=registry, traces=False, environ=clean_env)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with client(app) as c:
            assert (await c.get("/health")).json()["status"] == "ok"
            assert (await c.get("/metrics")).status_code == 200


def test_bad_path_settings_are_refused():
    from stackwatch.instrumentation import ConfigError

    with pytest.raises(ConfigError, match="STACKWATCH_METRICS_PATH"):
        instrument(FastAPI(), environ={"STACKWATCH_METRICS_PATH": "metrics"})
