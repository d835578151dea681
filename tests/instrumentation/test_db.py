"""Statement timing, queries per request and N+1 detection against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from stackwatch.instrumentation import (
    NPlusOneError,
    instrument,
    instrument_asyncpg,
    instrument_psycopg,
    instrument_sqlalchemy,
)

DB_DURATION = "db_client_operation_duration_seconds_count"


@pytest.fixture(scope="module")
def dsn(postgres) -> str:
    postgres.create_database("instrumentation")
    with psycopg.connect(postgres.dsn("instrumentation"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS authors (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 20) g ON CONFLICT DO NOTHING")
    return postgres.dsn("instrumentation")


def ops(registry, system: str = "postgresql", op: str = "SELECT") -> float:
    return registry.get_sample_value(DB_DURATION, {"db_system_name": system, "db_operation_name": op}) or 0.0


def n_plus_one(registry, route: str) -> float:
    return registry.get_sample_value("db_client_n_plus_one_total", {"http_route": route}) or 0.0


def per_request_sum(registry, route: str) -> float:
    return registry.get_sample_value("db_client_queries_per_request_sum", {"http_route": route}) or 0.0


def asgi(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


def test_psycopg_connection_statements_are_timed(dsn, registry):
    with psycopg.connect(dsn, autocommit=True) as conn:
        instrument_psycopg(conn, registry=registry)
        conn.execute("SELECT 1")
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM authors WHERE id = %s", (3,))
            assert cur.fetchone() == ("author 3",)
            cur.executemany("UPDATE authors SET name = name WHERE id = %s", [(1,), (2,)])
    assert ops(registry) == 2
    assert ops(registry, op="UPDATE") == 1


async def test_n_plus_one_in_a_request_with_a_psycopg_pool(dsn, registry, caplog):
    pool = ConnectionPool(dsn, min_size=1, max_size=2, open=True)
    instrument_psycopg(pool, registry=registry)
    app = FastAPI()

    @app.get("/authors/n-plus-one")
    def loop() -> list[str]:
        with pool.connection() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM authors ORDER BY id LIMIT 6")]
            return [conn.execute("SELECT name FROM authors WHERE id = %s", (i,)).fetchone()[0] for i in ids]

    @app.get("/authors/batched")
    def batched() -> list[str]:
        with pool.connection() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM authors WHERE id = ANY(%s)", ([1, 2, 3],))]

    instrument(app, registry=registry, traces=False, environ={}, n_plus_one_threshold=5)
    with caplog.at_level(logging.WARNING, logger="stackwatch.instrumentation"):
        async with asgi(app) as c:
            assert len((await c.get("/authors/n-plus-one")).json()) == 6
            assert len((await c.get("/authors/batched")).json()) == 3
    pool.close()
    assert n_plus_one(registry, "/authors/n-plus-one") == 1
    assert n_plus_one(registry, "/authors/batched") == 0
    assert per_request_sum(registry, "/authors/n-plus-one") == 7
    assert per_request_sum(registry, "/authors/batched") == 1
    warnings = [r.getMessage() for r in caplog.records if "N+1" in r.getMessage()]
    assert warnings == ["N+1 query pattern: 5 executions of select name from authors where id = ?"]
    assert all(len(r.trace_id) == 32 for r in caplog.records)  # log correlation is installed


async def test_n_plus_one_adds_a_span_event(dsn, registry, provider, spans):
    app = FastAPI()

    @app.get("/loop")
    async def loop() -> int:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            instrument_psycopg(conn, registry=registry)
            for i in range(1, 6):
                await conn.execute("SELECT name FROM authors WHERE id = %s", (i,))
        return 5

    instrument(app, registry=registry, tracer_provider=provider, environ={})
    async with asgi(app) as c:
        assert (await c.get("/loop")).status_code == 200
    (span,) = spans.get_finished_spans()
    (event,) = [e for e in span.events if e.name == "db.n_plus_one"]
    assert event.attributes["db.query.summary"] == "select name from authors where id = ?"
    assert "1" not in event.attributes["db.query.summary"]
    assert n_plus_one(registry, "/loop") == 1


async def test_strict_mode_raises(dsn, registry):
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    instrument_psycopg(pool, registry=registry)
    app = FastAPI()
    raised = []

    @app.get("/strict")
    async def strict() -> None:
        async with pool.connection() as conn:
            try:
                for i in range(10):
                    await conn.execute("SELECT %s::int", (i,))
            except NPlusOneError as exc:
                raised.append(exc)
                raise

    instrument(app, registry=registry, traces=False, environ={}, n_plus_one_strict=True, n_plus_one_threshold=3)
    async with asgi(app) as c:
        assert (await c.get("/strict")).status_code == 500
    await pool.close()
    assert len(raised) == 1 and raised[0].count == 3
    assert raised[0].fingerprint == "select ?::int"


def test_queries_outside_requests_do_not_count_toward_n_plus_one(dsn, registry):
    with psycopg.connect(dsn) as conn:
        instrument_psycopg(conn, registry=registry)
        for i in range(10):
            conn.execute("SELECT %s::int", (i,))
    assert ops(registry) == 10


async def test_sqlalchemy_sync_and_async_engines(dsn, registry):
    url = dsn.replace("postgresql://", "postgresql+psycopg://")
    engine = instrument_sqlalchemy(create_engine(url), registry=registry)
    instrument_sqlalchemy(engine, registry=registry)  # idempotent
    with engine.connect() as conn:
        conn.execute(text("SELECT name FROM authors WHERE id = :id"), {"id": 1})
        with pytest.raises(ProgrammingError):
            conn.execute(text("SELECT * FROM missing_table"))
    engine.dispose()
    assert ops(registry) == 2

    async_engine = instrument_sqlalchemy(create_async_engine(url), registry=registry)
    app = FastAPI()

    @app.get("/orm/{n}")
    async def orm(n: int) -> int:
        async with async_engine.connect() as conn:
            for i in range(n):
                await conn.execute(text("SELECT name FROM authors WHERE id = :id"), {"id": i})
        return n

    instrument(app, registry=registry, traces=False, environ={})
    async with asgi(app) as c:
        await c.get("/orm/6")
        await c.get("/orm/2")
    await async_engine.dispose()
    assert n_plus_one(registry, "/orm/{n}") == 1
    assert per_request_sum(registry, "/orm/{n}") == 8


async def test_asyncpg_pool_and_connection(dsn, registry):
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    instrument_asyncpg(pool, registry=registry)
    app = FastAPI()

    @app.get("/asyncpg")
    async def handler() -> int:
        async with pool.acquire() as conn:
            for i in range(5):
                await conn.fetchval("SELECT name FROM authors WHERE id = $1", i)
        return 5

    instrument(app, registry=registry, traces=False, environ={})
    async with asgi(app) as c:
        assert (await c.get("/asyncpg")).status_code == 200
    await pool.close()
    assert ops(registry) == 5  # not the reset statement the pool sends on release
    assert n_plus_one(registry, "/asyncpg") == 1

    conn = await asyncpg.connect(dsn)
    instrument_asyncpg(conn, registry=registry)
    await conn.execute("UPDATE authors SET name = name WHERE id = 1")
    assert ops(registry, op="UPDATE") == 0  # asyncpg reports on the next loop iteration
    await asyncio.sleep(0)
    assert ops(registry, op="UPDATE") == 1

    @app.get("/asyncpg-connection")
    async def plain() -> int:
        for i in range(5):
            await conn.fetchval("SELECT id FROM authors WHERE id = $1", i)
        return 5  # the fifth statement's report is still pending here

    async with asgi(app) as c:
        assert (await c.get("/asyncpg-connection")).status_code == 200
    await conn.close()
    assert n_plus_one(registry, "/asyncpg-connection") == 1
    assert per_request_sum(registry, "/asyncpg-connection") == 5


async def test_concurrent_requests_keep_their_own_statement_counts(dsn, registry):
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=8, open=False)
    await pool.open()
    instrument_psycopg(pool, registry=registry)
    apg = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
    instrument_asyncpg(apg, registry=registry)
    app = FastAPI()
    gate = asyncio.Event()

    @app.get("/psycopg/{n}")
    async def with_psycopg(n: int) -> int:
        await gate.wait()  # every request is in flight before any runs a statement
        async with pool.connection() as conn:
            for i in range(n):
                await conn.execute("SELECT name FROM authors WHERE id = %s", (i,))
                await asyncio.sleep(0)  # interleave with the other requests
        return n

    @app.get("/asyncpg/{n}")
    async def with_asyncpg(n: int) -> int:
        await gate.wait()
        for i in range(n):
            await apg.fetchval("SELECT name FROM authors WHERE id = $1", i)
            await asyncio.sleep(0)
        return n

    instrument(app, registry=registry, traces=False, environ={}, n_plus_one_threshold=5)
    async with asgi(app) as c:
        calls = [c.get(f"/{driver}/{n}") for driver in ("psycopg", "asyncpg") for n in (3, 3, 3, 3, 3, 5)]
        pending = asyncio.gather(*calls)
        await asyncio.sleep(0.2)
        gate.set()
        responses = await pending
    await pool.close()
    await apg.close()
    assert {r.status_code for r in responses} == {200}
    for driver in ("psycopg", "asyncpg"):
        route = f"/{driver}/{{n}}"
        # 20 executions of one fingerprint across requests, but only one request reached 5 itself
        assert n_plus_one(registry, route) == 1
        assert registry.get_sample_value(
            "db_client_queries_per_request_count", {"http_route": route}) == 6
        assert registry.get_sample_value(
            "db_client_queries_per_request_bucket", {"http_route": route, "le": "3.0"}) == 5
    assert per_request_sum(registry, "/psycopg/{n}") == 20
    assert per_request_sum(registry, "/asyncpg/{n}") == 20  # not the reset each release sends


async def test_strict_mode_with_sqlalchemy_counts_each_statement_once(dsn, registry):
    engine = instrument_sqlalchemy(create_engine(dsn.replace("postgresql://", "postgresql+psycopg://")),
                                   registry=registry)
    app = FastAPI()

    @app.get("/strict-orm")
    def strict() -> None:
        with engine.connect() as conn:
            for i in range(10):
                conn.execute(text("SELECT name FROM authors WHERE id = :id"), {"id": i})

    instrument(app, registry=registry, traces=False, environ={}, n_plus_one_strict=True, n_plus_one_threshold=3)
    async with asgi(app) as c:
        assert (await c.get("/strict-orm")).status_code == 500
    engine.dispose()
    assert per_request_sum(registry, "/strict-orm") == 3
    assert n_plus_one(registry, "/strict-orm") == 1
