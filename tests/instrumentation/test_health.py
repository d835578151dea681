"""/health, liveness and readiness with real PostgreSQL and Redis checks."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import redis
from psycopg_pool import ConnectionPool

from stackwatch.instrumentation import (
    database_check,
    instrument,
    redis_check,
    uninstrument,
)
from tests.fixtures.procs import wait_until

from .apps import make_app


def asgi(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def status(registry, check: str) -> float | None:
    return registry.get_sample_value("health_check_status", {"check": check})


async def test_healthy_dependencies(postgres, redis_server, registry):
    pool = ConnectionPool(postgres.dsn(), min_size=1, max_size=2, open=True)
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={},
               health_checks={"database": database_check(pool), "redis": redis_check(client)})
    async with asgi(app) as c:
        response = await c.get("/health")
        live = await c.get("/health/live")
        ready = await c.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["uptime_seconds"] >= 0
    assert abs(body["timestamp"] - time.time()) < 60
    assert set(body["checks"]) == {"database", "redis"}
    assert all(c["status"] == "ok" for c in body["checks"].values())
    assert live.status_code == 200 and "checks" not in live.json()
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert status(registry, "database") == 1
    assert status(registry, "redis") == 1
    assert postgres.dsn().split("@")[0] not in response.text
    pool.close()


async def test_failing_and_hanging_checks_give_503_within_the_timeout(redis_factory, registry):
    down = redis_factory()
    client = redis.Redis(host=down.host, port=down.port, password=None, socket_timeout=5)
    down.stop()

    async def hangs() -> None:
        await asyncio.sleep(30)

    app = make_app()
    instrument(app, registry=registry, traces=False, environ={}, health_timeout=0.5,
               health_checks={"redis": redis_check(client), "slow": hangs, "flag": lambda: False})
    async with asgi(app) as c:
        started = time.monotonic()
        response = await c.get("/health")
        elapsed = time.monotonic() - started
        live = await c.get("/health/live")
        ready = await c.get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["status"] == "fail"
    assert checks["redis"]["error"] in ("ConnectionError", "timeout after 0.5s")  # redis-py retries with backoff
    assert str(down.port) not in response.text
    assert checks["slow"]["error"] == "timeout after 0.5s"
    assert checks["flag"]["error"] == "check returned false"
    assert elapsed < 20  # bounded by the 0.5 s timeout, not by the 30 s hang
    assert live.status_code == 200
    assert ready.status_code == 503
    assert status(registry, "redis") == 0
    assert status(registry, "slow") == 0


async def test_errors_never_leak_secrets(postgres, registry):
    secret = "hunter2-very-secret"
    dsn = postgres.dsn(password=secret)
    pool = ConnectionPool(dsn, min_size=0, max_size=1, open=True, timeout=2)
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={}, health_checks={"database": database_check(pool)})
    async with asgi(app) as c:
        response = await c.get("/health")
    assert response.status_code == 503
    assert secret not in response.text
    assert "127.0.0.1" not in response.text
    assert json.loads(response.text)["checks"]["database"]["status"] == "fail"
    pool.close()


async def test_a_hung_sync_check_holds_one_thread_not_the_loop_executor(registry):
    release = threading.Event()
    entered = []

    def hangs() -> bool:
        entered.append(True)
        return release.wait(60)

    app = make_app()
    instrumentation = instrument(app, registry=registry, traces=False, environ={}, health_timeout=0.2,
                                 health_checks={"sync": hangs})
    try:
        async with asgi(app) as c:
            responses = [await c.get("/health") for _ in range(12)]  # more than the default executor's threads
            assert {r.status_code for r in responses} == {503}
            assert responses[-1].json()["checks"]["sync"]["error"] == "timeout after 0.2s"
            assert len(entered) == 1  # later evaluations wait on the hung run instead of starting more
            # the loop's default executor (getaddrinfo, to_thread) is still free for the service
            assert await asyncio.wait_for(asyncio.to_thread(lambda: 7), 10) == 7
            release.set()
            for _ in range(100):
                recovered = await c.get("/health")
                if recovered.status_code == 200:
                    break
            assert recovered.status_code == 200
            assert (await c.get("/health")).status_code == 200
            assert len(entered) >= 2  # once the hung run ended, evaluations start fresh ones
    finally:
        release.set()
        uninstrument(app)
    assert instrumentation.health._running == {}


async def test_database_check_for_each_supported_handle(postgres, registry):
    import asyncpg
    from psycopg_pool import AsyncConnectionPool
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    url = postgres.dsn().replace("postgresql://", "postgresql+psycopg://")
    engine, async_engine = create_engine(url), create_async_engine(url)
    sync_pool = ConnectionPool(postgres.dsn(), min_size=1, max_size=1, open=True)
    async_pool = AsyncConnectionPool(postgres.dsn(), min_size=1, max_size=1, open=False)
    await async_pool.open()
    apg = await asyncpg.create_pool(postgres.dsn(), min_size=1, max_size=1)
    handles = {"psycopg": sync_pool, "psycopg_async": async_pool, "asyncpg": apg,
               "sqlalchemy": engine, "sqlalchemy_async": async_engine}
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={},
               health_checks={name: database_check(handle) for name, handle in handles.items()})
    try:
        async with asgi(app) as c:
            response = await c.get("/health")
        assert {name: check["status"] for name, check in response.json()["checks"].items()} == dict.fromkeys(handles, "ok")
        assert response.status_code == 200
    finally:
        uninstrument(app)
        await apg.close()
        await async_pool.close()
        sync_pool.close()
        await async_engine.dispose()
        engine.dispose()


def last_run(registry, check: str) -> float | None:
    return registry.get_sample_value("health_check_last_run_timestamp_seconds", {"check": check})


def test_checks_run_on_a_timer_without_anyone_requesting_health(redis_factory, registry, serve):
    """A real uvicorn app and a real Redis: the status follows Redis with no /health request."""
    server = redis_factory()
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=1, socket_connect_timeout=1)
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={"STACKWATCH_HEALTH_INTERVAL": "0.2"},
               health_timeout=1, health_checks={"redis": redis_check(client)})
    try:
        with serve(app) as url:
            wait_until(lambda: status(registry, "redis") == 1, 10, "the first timed evaluation")
            first = last_run(registry, "redis")
            wait_until(lambda: last_run(registry, "redis") > first, 10, "a second timed evaluation")
            server.stop()
            wait_until(lambda: status(registry, "redis") == 0, 15, "the status to follow Redis down")
            scraped = httpx.get(f"{url}/metrics", timeout=10).text
            assert 'health_check_status{check="redis"} 0.0' in scraped
            assert 'health_check_last_run_timestamp_seconds{check="redis"}' in scraped
        stopped = last_run(registry, "redis")
        time.sleep(0.6)  # three intervals: a timer that outlived the shutdown would have run again
        assert last_run(registry, "redis") == stopped
    finally:
        uninstrument(app)


def test_without_lifespan_the_first_request_starts_the_timer(registry, serve):
    runs: list[float] = []
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={}, health_interval=0.1,
               health_checks={"counted": lambda: runs.append(time.time())})
    try:
        with serve(app, lifespan="off") as url:
            time.sleep(0.3)
            assert runs == []  # nothing served yet: the app has not been called
            assert httpx.get(f"{url}/items/1", timeout=10).status_code == 200
            wait_until(lambda: len(runs) >= 3, 10, "timed evaluations after the first request")
    finally:
        uninstrument(app)


def test_interval_zero_runs_checks_only_on_request(registry, serve):
    runs: list[float] = []
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={"STACKWATCH_HEALTH_INTERVAL": "0"},
               health_checks={"counted": lambda: runs.append(time.time())})
    try:
        with serve(app) as url:
            assert httpx.get(f"{url}/items/1", timeout=10).status_code == 200
            time.sleep(0.3)
            assert runs == []
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
            assert len(runs) == 1
    finally:
        uninstrument(app)
