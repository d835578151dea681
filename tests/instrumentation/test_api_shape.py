"""The API has the shape OpenTelemetry users know: every ``instrument_*`` has an ``uninstrument_*``
twin that really removes what it added (against the real PostgreSQL and Redis), one options value,
and a package ``__init__`` that only re-exports."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import asyncpg
import psycopg
import pytest
import redis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool
from sqlalchemy import create_engine, text

import stackwatch.instrumentation as sw
from stackwatch.instrumentation import (
    InstrumentOptions,
    instrument,
    instrument_asyncpg,
    instrument_pool,
    instrument_psycopg,
    instrument_sqlalchemy,
    uninstrument_asyncpg,
    uninstrument_pool,
    uninstrument_psycopg,
    uninstrument_sqlalchemy,
)

from .test_db import asgi, dsn, ops  # noqa: F401 - dsn is the module's database fixture

ROOT = Path(__file__).resolve().parents[2]


def test_every_instrument_function_has_an_uninstrument_twin() -> None:
    public = set(sw.__all__)
    instrumenters = {name for name in public if name.startswith("instrument")}
    assert {"instrument", "instrument_psycopg", "instrument_asyncpg", "instrument_sqlalchemy",
            "instrument_pool"} <= instrumenters
    assert {f"un{name}" for name in instrumenters} <= public


def test_the_package_init_only_re_exports() -> None:
    tree = ast.parse((ROOT / "instrumentation" / "__init__.py").read_text())
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        dunder_all = isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["__all__"]
        assert docstring or dunder_all or isinstance(node, (ast.Import, ast.ImportFrom)), ast.dump(node)[:80]


def test_psycopg_connection(dsn, registry) -> None:  # noqa: F811
    with psycopg.connect(dsn, autocommit=True) as conn:
        own_factory = conn.cursor_factory
        uninstrument_psycopg(conn)  # not instrumented: harmless
        instrument_psycopg(conn, registry=registry)
        conn.execute("SELECT 1")
        assert ops(registry) == 1
        uninstrument_psycopg(conn)
        uninstrument_psycopg(conn)  # twice: harmless
        assert conn.cursor_factory is own_factory
        conn.execute("SELECT 1")
        assert ops(registry) == 1
        instrument_psycopg(conn, registry=registry)  # again: counted again
        conn.execute("SELECT 1")
        assert ops(registry) == 2


def test_psycopg_pool_also_restores_the_connections_it_handed_out(dsn, registry) -> None:  # noqa: F811
    with ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:
        instrument_psycopg(pool, registry=registry)
        watch = instrument_pool(pool, name="unpsy", registry=registry)
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        assert ops(registry) == 1
        uninstrument_psycopg(pool)
        uninstrument_psycopg(pool)
        with pool.connection() as conn:  # the same connection, switched before: its own factory again
            conn.execute("SELECT 1")
        assert ops(registry) == 1
        waits = {"pool_name": "unpsy"}  # the pool's watch, wrapped around psycopg's getconn, still times
        assert registry.get_sample_value("db_client_connection_wait_time_seconds_count", waits) == 2
        instrument_psycopg(pool, registry=registry)
        uninstrument_pool(pool)  # undoes only its own wrapping: the statements still count
        assert "putconn" not in vars(pool) and watch.name == "unpsy"
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        assert ops(registry) == 2
        uninstrument_psycopg(pool)  # every layer undone (those wrapped over stay as pass-throughs): nothing counts
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        assert ops(registry) == 2
        assert registry.get_sample_value("db_client_connection_wait_time_seconds_count", waits) == 2  # not timed


def test_sqlalchemy_engine(dsn, registry) -> None:  # noqa: F811
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    uninstrument_sqlalchemy(engine)
    instrument_sqlalchemy(engine, registry=registry)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        assert ops(registry) == 1
        uninstrument_sqlalchemy(engine)
        uninstrument_sqlalchemy(engine)
        conn.execute(text("SELECT 1"))
        assert ops(registry) == 1
        instrument_sqlalchemy(engine, registry=registry)
        conn.execute(text("SELECT 1"))
        assert ops(registry) == 2
    engine.dispose()


async def test_asyncpg_connection_and_pool(dsn, registry) -> None:  # noqa: F811
    conn = await asyncpg.connect(dsn)
    uninstrument_asyncpg(conn)
    instrument_asyncpg(conn, registry=registry)
    await conn.execute("SELECT 1")
    await asyncio.sleep(0)  # asyncpg reports on the next loop iteration
    assert ops(registry) == 1
    uninstrument_asyncpg(conn)
    uninstrument_asyncpg(conn)
    await conn.execute("SELECT 1")
    await asyncio.sleep(0)
    assert ops(registry) == 1
    await conn.close()

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    instrument_asyncpg(pool, registry=registry)
    instrument_asyncpg(pool, registry=CollectorRegistry())  # a second registry: undone together
    async with pool.acquire() as held:
        await held.execute("SELECT 1")
    await asyncio.sleep(0)
    assert ops(registry) == 2
    uninstrument_asyncpg(pool)
    uninstrument_asyncpg(pool)
    async with pool.acquire() as held:  # the connection that had the logger: removed from it too
        await held.execute("SELECT 1")
    await asyncio.sleep(0)
    assert ops(registry) == 2
    instrument_asyncpg(pool, registry=registry)
    async with pool.acquire() as held:
        await held.execute("SELECT 1")
    await asyncio.sleep(0)
    assert ops(registry) == 3
    await pool.close()


def _max(registry, name: str) -> float | None:
    list(registry.collect())  # the gauges refresh on collection
    return registry.get_sample_value("db_client_connection_max", {"pool_name": name})


def test_redis_pool_gauges_go_and_come_back(redis_server, registry) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, max_connections=3)
    uninstrument_pool(client)
    first = instrument_pool(client, name="unredis", registry=registry)
    client.ping()
    assert _max(registry, "unredis") == 3
    uninstrument_pool(client)
    uninstrument_pool(client)
    assert _max(registry, "unredis") is None
    assert "get_connection" not in vars(client.connection_pool)
    client.ping()  # no longer timed
    assert registry.get_sample_value("db_client_connection_wait_time_seconds_count", {"pool_name": "unredis"}) == 1
    assert instrument_pool(client, name="unredis", registry=registry) is not first  # a fresh watch
    assert _max(registry, "unredis") == 3
    uninstrument_pool(client)
    client.close()


async def test_asyncpg_pool_gauges_go(dsn, registry) -> None:  # noqa: F811
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    own_class = type(pool)
    instrument_pool(pool, name="unapg", registry=registry)
    assert _max(registry, "unapg") == 2
    uninstrument_pool(pool)
    uninstrument_pool(pool)
    assert type(pool) is own_class and _max(registry, "unapg") is None
    async with pool.acquire() as held:
        assert await held.fetchval("SELECT 1") == 1
    instrument_pool(pool, name="unapg", registry=registry)
    assert _max(registry, "unapg") == 2
    uninstrument_pool(pool)
    await pool.close()


async def test_one_options_value_and_the_keywords_both_work(registry) -> None:
    app = FastAPI()

    @app.get("/hi")
    async def hi() -> str:
        return "hi"

    unused = CollectorRegistry()
    instrumentation = instrument(app, InstrumentOptions(registry=unused, health_checks={}), registry=registry,
                                 traces=False, environ={}, service_name="shaped")
    assert instrumentation.settings.service_name == "shaped"
    async with asgi(app) as client:
        assert (await client.get("/hi")).status_code == 200
    labels = {"http_request_method": "GET", "http_route": "/hi", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1  # keyword won
    assert unused.get_sample_value("http_server_request_duration_seconds_count", labels) is None
    with pytest.raises(sw.ConfigError, match="unknown setting.*registri"):
        instrument(FastAPI(), registri=registry, environ={})
    sw.uninstrument(app)
