"""The demo service: every endpoint produces one of the signals the dashboards and alerts watch.

=================================  =========================================================
``GET /books``                     normal traffic: one joined query
``GET /authors/{id}``              cache-aside in Redis: misses, then hits until the TTL ends
``PUT /authors/{id}``              write-through: the row and the cache entry, then SCAN
                                   invalidation of the author's derived keys
``GET /authors/{id}/books``        an N+1 loop: one query per book for its author
``GET /reports/slow``              a slow statement (``pg_sleep``) for the slow-query panels
``POST /reports``                  a report enqueued as an RQ job (202); ``python -m demo.worker``
                                   builds it (:mod:`demo.jobs`), in the request's trace
``GET /error``                     an unhandled exception: a 500 and a Sentry event
``GET /static/app.<hash>.css``     a fingerprinted asset, cacheable for a year (``immutable``)
``GET /health``, ``/metrics``      from stackwatch.instrumentation
=================================  =========================================================

Configuration (environment): ``DATABASE_URL`` (or ``DEMO_DATABASE_URL``), ``REDIS_URL`` (or
``DEMO_REDIS_URL``), ``DEMO_CACHE_TTL`` seconds, plus every ``OTEL_*``/``SENTRY_*``/
``STACKWATCH_*`` variable of the instrumentation. Nothing connects at import: the pool opens
and the schema is created when the app starts. Every response says how it may be cached
(``Cache-Control``), as the checklist's CDN section asks, and responses of 1 KiB or more go out
gzipped when the client accepts it (the checklist's response compression).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool
from rq import Queue

from stackwatch.instrumentation import (
    AsyncCache,
    database_check,
    instrument,
    instrument_pool,
    instrument_psycopg,
    redis_check,
)
from stackwatch.instrumentation.jobs_rq import instrument_rq
from stackwatch.thresholds import HTTP

from . import jobs

__all__ = ["STATIC_DIR", "create_app"]  # and `app`, built on first access (module __getattr__)

#: fingerprinted assets: each name carries its content's hash, so a new version is a new name
STATIC_DIR = Path(__file__).parent / "static"
#: how the demo's API responses may be cached: shared catalog data briefly, writes and jobs never
PUBLIC = "public, max-age=60"
NO_STORE = "no-store"

SCHEMA = """
CREATE TABLE IF NOT EXISTS authors (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS books (
    id int PRIMARY KEY,
    author_id int NOT NULL REFERENCES authors(id),
    title text NOT NULL
);
CREATE INDEX IF NOT EXISTS books_author_id ON books (author_id);
"""
AUTHORS = 50
BOOKS_PER_AUTHOR = 8


def _setting(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(name) or environ.get(f"DEMO_{name}") or default


async def _prepare(pool: AsyncConnectionPool) -> None:
    """Create and seed the schema once (idempotent; concurrent starts are serialized by a lock)."""
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(4242)")
        await conn.execute(SCHEMA)
        await conn.execute(
            "INSERT INTO authors SELECT g, 'Author ' || g FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            (AUTHORS,),
        )
        await conn.execute(
            "INSERT INTO books SELECT g, 1 + (g - 1) %% %s, 'Book ' || g FROM generate_series(1, %s) g "
            "ON CONFLICT DO NOTHING",
            (AUTHORS, AUTHORS * BOOKS_PER_AUTHOR),
        )


class FingerprintedStatic(StaticFiles):
    """Static files whose names carry their content hash: browsers and CDNs keep them for a year."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    """Build the demo app from ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    database_url = _setting(environ, "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/demo")
    redis_url = _setting(environ, "REDIS_URL", "redis://127.0.0.1:6379/0")
    # 5 minutes: the load generator looks up 50 authors ~6 times a second in all, so a 30 s TTL
    # expired each key after ~4 lookups (a 70% hit ratio, under the checklist's 80%: CacheHitRatioLow
    # and RedisHitRatioLow fired in the steady state, which is not one of the demo's designed faults)
    ttl = float(_setting(environ, "CACHE_TTL", "300"))

    pool = AsyncConnectionPool(database_url, min_size=2, max_size=10, open=False, name="demo")
    client = aioredis.Redis.from_url(redis_url)
    cache = AsyncCache(client, "authors", ttl=ttl)
    reports = Queue(jobs.QUEUE, connection=redis.Redis.from_url(redis_url))
    instrument_rq()  # enqueued reports carry the request's trace to the worker (python -m demo.worker)
    instrument_psycopg(pool)
    instrument_pool(pool, name="demo")
    instrument_pool(client, name="redis")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)
        await _prepare(pool)
        yield
        await pool.close()
        await client.aclose()

    app = FastAPI(title="stackwatch demo", lifespan=lifespan)

    async def load_author(author_id: int) -> dict[str, Any]:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT id, name FROM authors WHERE id = %s", (author_id,))).fetchone()
        if row is None:
            raise HTTPException(status_code=404, detail="no such author")
        return {"id": row[0], "name": row[1]}

    @app.get("/books")
    async def books(response: Response, limit: int = 20) -> list[dict[str, Any]]:
        response.headers["Cache-Control"] = PUBLIC
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT b.id, b.title, a.name FROM books b JOIN authors a ON a.id = b.author_id ORDER BY b.id LIMIT %s",
                (min(limit, 100),),
            )
            return [{"id": r[0], "title": r[1], "author": r[2]} for r in await cursor.fetchall()]

    @app.get("/authors/{author_id}")
    async def author(author_id: int, response: Response) -> dict[str, Any]:
        response.headers["Cache-Control"] = PUBLIC
        return await cache.get_or_load(str(author_id), lambda: load_author(author_id))

    @app.put("/authors/{author_id}")
    async def rename(author_id: int, name: str, response: Response) -> dict[str, Any]:
        response.headers["Cache-Control"] = NO_STORE
        async def write(value: dict[str, Any]) -> None:
            async with pool.connection() as conn:
                await conn.execute("UPDATE authors SET name = %s WHERE id = %s", (value["name"], author_id))

        await cache.write_through(str(author_id), {"id": author_id, "name": name}, write)
        await cache.invalidate_pattern(f"{author_id}:*")
        return {"id": author_id, "name": name}

    @app.get("/authors/{author_id}/books")
    async def books_of(author_id: int, response: Response) -> list[dict[str, Any]]:
        """Deliberately N+1: the author is fetched again for every book."""
        response.headers["Cache-Control"] = PUBLIC
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT id, title, author_id FROM books WHERE author_id = %s", (author_id,))
            rows = await cursor.fetchall()
            result = []
            for book_id, title, owner in rows:
                name = await (await conn.execute("SELECT name FROM authors WHERE id = %s", (owner,))).fetchone()
                result.append({"id": book_id, "title": title, "author": name[0] if name else None})
            return result

    @app.get("/reports/slow")
    async def slow_report(response: Response) -> dict[str, Any]:
        response.headers["Cache-Control"] = NO_STORE
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*), pg_sleep(0.3) FROM books")).fetchone()
        return {"books": row[0]}

    @app.post("/reports", status_code=202)
    async def enqueue_report(response: Response, author_id: int = 1) -> dict[str, Any]:
        """The report is built by a worker: the request only enqueues it."""
        response.headers["Cache-Control"] = NO_STORE
        job = await asyncio.to_thread(reports.enqueue, jobs.build_report, author_id)
        return {"job": job.id, "queue": jobs.QUEUE}

    @app.get("/error")
    async def error() -> None:
        raise RuntimeError("demo failure")

    app.mount("/static", FingerprintedStatic(directory=STATIC_DIR), name="static")
    app.add_middleware(GZipMiddleware, minimum_size=HTTP.compression_min_bytes)
    instrument(app, health_checks={"database": database_check(pool), "redis": redis_check(client)})
    return app


def __getattr__(name: str) -> Any:
    """``demo.app:app`` for uvicorn, built from the environment on first access (not at import)."""
    if name == "app":
        globals()["app"] = built = create_app()
        return built
    raise AttributeError(name)
