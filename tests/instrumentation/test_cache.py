"""The cache-aside helper against a real redis-server (sync and asyncio clients)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI

from stackwatch.instrumentation import AsyncCache, Cache, instrument


def requests(registry, cache: str, result: str) -> float:
    return registry.get_sample_value("cache_requests_total", {"cache": cache, "result": result}) or 0.0


def test_sync_cache_aside_ttl_write_through_and_invalidation(redis_server, registry):
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    client.flushall()
    cache = Cache(client, "users", ttl=30, registry=registry)
    loads = []

    def load() -> dict[str, int]:
        loads.append(1)
        return {"id": 1}

    assert cache.get_or_load("1", load) == {"id": 1}
    assert cache.get_or_load("1", load) == {"id": 1}
    assert len(loads) == 1
    assert requests(registry, "users", "miss") == 1
    assert requests(registry, "users", "hit") == 1
    assert 0 < client.pttl("users:1") <= 30_000

    written = []
    assert cache.write_through("2", {"id": 2}, lambda v: written.append(v) or "stored", ttl=5) == "stored"
    assert written == [{"id": 2}]
    assert cache.get("2") == {"id": 2}
    assert 0 < client.pttl("users:2") <= 5_000

    assert cache.invalidate("1") == 1
    assert cache.get("1", default="gone") == "gone"
    assert cache.invalidate() == 0

    for i in range(1200):
        client.set(f"users:bulk:{i}", i)
    client.set("other:bulk:1", 1)
    assert cache.invalidate_pattern("bulk:*", batch=100) == 1200
    assert client.exists("other:bulk:1") == 1
    assert client.dbsize() == 2  # users:2 and other:bulk:1
    client.close()


def test_pattern_invalidation_uses_scan_not_keys(redis_server, registry):
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    cache = Cache(client, "scan", registry=registry)
    cache.set("a", 1)
    client.execute_command("CONFIG", "RESETSTAT")
    assert cache.invalidate_pattern("*") == 1
    stats = client.info("commandstats")
    assert "cmdstat_scan" in stats
    assert "cmdstat_keys" not in stats
    client.close()


def test_bad_ttl_is_rejected(redis_server):
    with pytest.raises(ValueError, match="ttl"):
        Cache(redis.Redis(host=redis_server.host, port=redis_server.port), ttl=0)


async def test_async_cache_in_a_request_records_cache_hit_on_the_span(redis_server, registry, provider, spans):
    client = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    cache = AsyncCache(client, "products", ttl=60, registry=registry)
    await cache.invalidate_pattern("*")
    app = FastAPI()

    @app.get("/products/{pid}")
    async def product(pid: int) -> dict[str, int]:
        async def load() -> dict[str, int]:
            return {"id": pid}

        return await cache.get_or_load(str(pid), load)

    instrument(app, registry=registry, tracer_provider=provider, environ={})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/products/7")).json() == {"id": 7}
        assert (await c.get("/products/7")).json() == {"id": 7}
    miss, hit = spans.get_finished_spans()
    assert miss.attributes["cache.hit"] is False
    assert hit.attributes["cache.hit"] is True
    assert requests(registry, "products", "hit") == 1
    assert requests(registry, "products", "miss") == 1

    await cache.write_through("8", {"id": 8}, _async_writer)
    assert await cache.get("8") == {"id": 8}
    assert await cache.invalidate("8") == 1
    await client.aclose()


async def _async_writer(value):
    return value


async def test_a_stopped_redis_turns_lookups_into_counted_errors_not_500s(redis_factory, registry, caplog):
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    server = redis_factory()
    timeouts = {"socket_timeout": 2, "socket_connect_timeout": 2}
    aclient = aioredis.Redis(host=server.host, port=server.port, retry=AsyncRetry(NoBackoff(), 0), **timeouts)
    sclient = redis.Redis(host=server.host, port=server.port, retry=Retry(NoBackoff(), 0), **timeouts)
    users = AsyncCache(aclient, "users", ttl=60, registry=registry, retry_after=4.0)
    books = Cache(sclient, "books", ttl=60, registry=registry, retry_after=4.0)
    loads: list[int] = []
    app = FastAPI()

    @app.get("/users/{uid}")
    async def user(uid: int) -> dict[str, int]:
        async def load() -> dict[str, int]:
            loads.append(uid)
            return {"id": uid}

        return await users.get_or_load(str(uid), load)

    @app.get("/books/{bid}")
    def book(bid: int) -> dict[str, int]:
        return books.get_or_load(str(bid), lambda: {"book": bid})

    instrument(app, registry=registry, traces=False, environ={})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/users/1")).json() == {"id": 1}  # miss, loaded and stored
        assert (await c.get("/users/1")).json() == {"id": 1}  # hit
        server.stop()
        for _ in range(3):  # the first lookup fails, the next ones bypass Redis
            response = await c.get("/users/1")
            assert response.status_code == 200 and response.json() == {"id": 1}
            response = await c.get("/books/2")
            assert response.status_code == 200 and response.json() == {"book": 2}
        assert await users.get("1", default="fallback") == "fallback"
        assert await users.set("1", {"id": 1}) is False
        assert books.set("2", {"book": 2}) is False
        with pytest.raises(redis.exceptions.ConnectionError):
            await users.invalidate("1")  # invalidations are never skipped silently
        server.start()
        assert (await c.get("/users/1")).json() == {"id": 1}  # still bypassed
        await asyncio.sleep(4.1)
        assert (await c.get("/users/1")).json() == {"id": 1}  # Redis again: a miss (it restarted empty), stored
        assert (await c.get("/users/1")).json() == {"id": 1}  # a hit
    assert loads == [1, 1, 1, 1, 1, 1]
    assert requests(registry, "users", "error") == 5
    assert requests(registry, "books", "error") == 3
    assert requests(registry, "users", "hit") == 2
    assert requests(registry, "users", "miss") == 2
    warnings = [r.getMessage() for r in caplog.records if "serving without the cache" in r.getMessage()]
    assert len(warnings) == 2, warnings  # once per cache and outage, not once per request
    assert "ConnectionError" in warnings[0] and str(server.port) not in caplog.text
    await aclient.aclose()
    sclient.close()
