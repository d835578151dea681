"""Meant repeats (keyset pagination) are not N+1: allowlist, per-block suppression, duration floor.

Each case is checked both ways against a real PostgreSQL: the meant loop passes, strict mode
included, while a real N+1 next to it is still flagged.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from stackwatch.instrumentation import ConfigError, allow_n_plus_one, instrument, instrument_psycopg

PAGE = "SELECT id FROM events WHERE id > %s ORDER BY id LIMIT 5"


@pytest.fixture(scope="module")
def dsn(postgres) -> str:
    postgres.create_database("n_plus_one")
    with psycopg.connect(postgres.dsn("n_plus_one"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id int PRIMARY KEY)")
        conn.execute("INSERT INTO events SELECT g FROM generate_series(1, 50) g ON CONFLICT DO NOTHING")
    return postgres.dsn("n_plus_one")


async def keyset_pages(conn) -> list[int]:
    """Every event id, five per page, each page after the last id seen (13 equal statements)."""
    seen: list[int] = []
    cursor = 0
    while True:
        rows = await (await conn.execute(PAGE, (cursor,))).fetchall()
        if not rows:
            return seen
        seen += [r[0] for r in rows]
        cursor = rows[-1][0]


async def app_with(dsn: str, registry, suppress: bool = False, environ: dict[str, str] | None = None,
                   **settings) -> tuple[FastAPI, AsyncConnectionPool]:
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    instrument_psycopg(pool, registry=registry)
    app = FastAPI()

    @app.get("/events")
    async def events() -> int:
        async with pool.connection() as conn:
            if suppress:
                with allow_n_plus_one():
                    return len(await keyset_pages(conn))
            return len(await keyset_pages(conn))

    @app.get("/n-plus-one")
    async def n_plus_one() -> int:
        async with pool.connection() as conn:
            for i in range(1, 7):
                await conn.execute("SELECT pg_sleep(0.05), id FROM events WHERE id = %s", (i,))
        return 6

    instrument(app, registry=registry, traces=False, environ=environ or {}, n_plus_one_strict=True,
               n_plus_one_threshold=3, **settings)
    return app, pool


async def statuses(app) -> tuple[int, int]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return (await c.get("/events")).status_code, (await c.get("/n-plus-one")).status_code


def flagged(registry, route: str) -> float:
    return registry.get_sample_value("db_client_n_plus_one_total", {"http_route": route}) or 0.0


async def test_keyset_pagination_is_flagged_by_default(dsn, registry):
    app, pool = await app_with(dsn, registry)
    assert await statuses(app) == (500, 500)
    await pool.close()
    assert flagged(registry, "/events") == 1 and flagged(registry, "/n-plus-one") == 1


async def test_an_allowed_statement_is_never_n_plus_one(dsn, registry):
    # The statement as written in the code (or its fingerprint) is enough.
    app, pool = await app_with(dsn, registry, n_plus_one_allow=[PAGE])
    assert await statuses(app) == (200, 500)
    await pool.close()
    assert flagged(registry, "/events") == 0 and flagged(registry, "/n-plus-one") == 1
    assert registry.get_sample_value("db_client_queries_per_request_sum", {"http_route": "/events"}) == 11


async def test_the_allowlist_from_the_environment(dsn, registry):
    fingerprint = "select id from events where id > ? order by id limit ?"
    app, pool = await app_with(dsn, registry, environ={"STACKWATCH_N_PLUS_ONE_ALLOW": f"select 1; {fingerprint}"})
    assert await statuses(app) == (200, 500)
    await pool.close()


async def test_a_suppressed_block_is_never_n_plus_one(dsn, registry):
    app, pool = await app_with(dsn, registry, suppress=True)
    assert await statuses(app) == (200, 500)
    await pool.close()
    assert flagged(registry, "/events") == 0 and flagged(registry, "/n-plus-one") == 1


async def test_repeats_below_the_duration_floor_are_not_n_plus_one(dsn, registry):
    # 11 fast pages take a few ms in all; 6 statements of 50 ms each pass a 250 ms floor.
    app, pool = await app_with(dsn, registry, n_plus_one_min_duration=0.25)
    assert await statuses(app) == (200, 500)
    await pool.close()
    assert flagged(registry, "/events") == 0 and flagged(registry, "/n-plus-one") == 1


def test_bad_values_are_refused():
    with pytest.raises(ConfigError, match="STACKWATCH_N_PLUS_ONE_MIN_DURATION.*'-1'"):
        instrument(FastAPI(), environ={"STACKWATCH_N_PLUS_ONE_MIN_DURATION": "-1"})
    with pytest.raises(ConfigError, match="n_plus_one_allow"):
        instrument(FastAPI(), environ={}, n_plus_one_allow=[3])
