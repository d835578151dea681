"""Pool signals for psycopg_pool, SQLAlchemy, asyncpg and redis-py against real servers."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import create_engine, text

from stackwatch.instrumentation import instrument_pool


def gauge(registry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def state(registry, pool: str, which: str) -> float | None:
    registry.collect()  # the refresher runs on collection
    return gauge(registry, "db_client_connection_count", pool_name=pool, state=which)


def waits(registry, pool: str) -> float:
    return gauge(registry, "db_client_connection_wait_time_seconds_count", pool_name=pool) or 0.0


def series(registry, name: str, pool: str) -> int:
    """How many samples ``name`` has for ``pool`` (a pool watched twice would report twice)."""
    return sum(1 for family in registry.collect() for sample in family.samples
               if sample.name == name and sample.labels.get("pool_name") == pool)


def collect(registry) -> None:
    list(registry.collect())


def test_psycopg_pool_used_idle_max_pending_and_wait(postgres, registry):
    pool = ConnectionPool(postgres.dsn(), min_size=2, max_size=2, open=True, name="orders")
    pool.wait()
    watch = instrument_pool(pool, registry=registry)
    assert instrument_pool(pool, registry=registry) is watch  # idempotent: the same watcher
    collect(registry)
    assert gauge(registry, "db_client_connection_max", pool_name="orders") == 2
    assert gauge(registry, "db_client_connection_count", pool_name="orders", state="idle") == 2

    first = pool.getconn()
    second = pool.getconn()
    collect(registry)
    assert gauge(registry, "db_client_connection_count", pool_name="orders", state="used") == 2
    assert gauge(registry, "db_client_connection_count", pool_name="orders", state="idle") == 0

    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.getconn(timeout=10)))
    waiter.start()
    for _ in range(1000):  # up to ~10 s on a busy machine
        collect(registry)
        if gauge(registry, "db_client_connection_pending_requests", pool_name="orders") == 1:
            break
        threading.Event().wait(0.01)
    assert gauge(registry, "db_client_connection_pending_requests", pool_name="orders") == 1
    threading.Event().wait(0.05)
    pool.putconn(first)
    waiter.join(10)
    pool.putconn(second)
    pool.putconn(got[0])
    collect(registry)
    assert gauge(registry, "db_client_connection_pending_requests", pool_name="orders") == 0
    assert waits(registry, "orders") == 3  # three checkouts, each measured once although instrumented twice
    assert series(registry, "db_client_connection_max", "orders") == 1
    assert gauge(registry, "db_client_connection_wait_time_seconds_sum", pool_name="orders") >= 0.05
    pool.close()


async def test_async_psycopg_pool(postgres, registry):
    pool = AsyncConnectionPool(postgres.dsn(), min_size=1, max_size=3, open=False, name="async")
    await pool.open(wait=True)
    instrument_pool(pool, registry=registry)
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
        collect(registry)
        assert gauge(registry, "db_client_connection_count", pool_name="async", state="used") == 1
    assert waits(registry, "async") == 1
    assert gauge(registry, "db_client_connection_max", pool_name="async") == 3
    await pool.close()


async def test_connections_being_opened_are_not_counted_as_used(postgres, registry):
    from tests.fixtures.procs import free_port

    # A pool whose database is down keeps re-opening its connections: none is used by a client.
    down = AsyncConnectionPool(f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1",
                               min_size=3, max_size=5, open=False, name="down", reconnect_timeout=60)
    await down.open(wait=False)
    instrument_pool(down, registry=registry)
    up = AsyncConnectionPool(postgres.dsn(), min_size=3, max_size=5, open=False, name="up")
    await up.open(wait=True)
    instrument_pool(up, registry=registry)
    await asyncio.sleep(0.2)
    assert down.get_stats()["pool_size"] == 3 and down.get_stats()["pool_available"] == 0
    assert state(registry, "down", "used") == 0  # was 3: pool_size - pool_available
    assert state(registry, "down", "idle") == 0
    async with up.connection(), up.connection():
        assert state(registry, "up", "used") == 2
        assert state(registry, "up", "idle") == 1
    assert state(registry, "up", "used") == 0
    await down.close(timeout=0)
    await up.close()


def test_sqlalchemy_queue_pool(postgres, registry):
    engine = create_engine(postgres.dsn().replace("postgresql://", "postgresql+psycopg://"), pool_size=3, max_overflow=2)
    instrument_pool(engine, name="sqla", registry=registry)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        collect(registry)
        assert gauge(registry, "db_client_connection_count", pool_name="sqla", state="used") == 1
    collect(registry)
    assert gauge(registry, "db_client_connection_count", pool_name="sqla", state="idle") == 1
    assert gauge(registry, "db_client_connection_max", pool_name="sqla") == 5
    assert waits(registry, "sqla") == 1
    engine.dispose()


async def test_asyncpg_pool(postgres, registry):
    pool = await asyncpg.create_pool(postgres.dsn(), min_size=2, max_size=4)
    watch = instrument_pool(pool, name="apg", registry=registry)
    assert instrument_pool(pool, name="apg", registry=registry) is watch  # idempotent: the same watcher
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
        collect(registry)
        assert gauge(registry, "db_client_connection_count", pool_name="apg", state="used") == 1
        assert gauge(registry, "db_client_connection_count", pool_name="apg", state="idle") == 1
    assert gauge(registry, "db_client_connection_max", pool_name="apg") == 4
    assert waits(registry, "apg") == 1  # one acquire, measured once although instrumented twice
    assert series(registry, "db_client_connection_max", "apg") == 1
    await pool.close()


def test_redis_sync_pool(redis_server, registry):
    client = redis.Redis(host=redis_server.host, port=redis_server.port, max_connections=8)
    instrument_pool(client, name="cache", registry=registry)
    client.set("k", "v")
    client.get("k")
    collect(registry)
    assert gauge(registry, "db_client_connection_count", pool_name="cache", state="idle") == 1
    assert gauge(registry, "db_client_connection_count", pool_name="cache", state="used") == 0
    assert gauge(registry, "db_client_connection_max", pool_name="cache") == 8
    assert waits(registry, "cache") == 2
    client.close()


async def test_redis_async_pool(redis_server, registry):
    client = aioredis.Redis(host=redis_server.host, port=redis_server.port, max_connections=4)
    instrument_pool(client, name="acache", registry=registry)
    await asyncio.gather(*(client.ping() for _ in range(3)))
    collect(registry)
    idle = gauge(registry, "db_client_connection_count", pool_name="acache", state="idle")
    assert 1 <= idle <= 3
    assert waits(registry, "acache") == 3
    await client.aclose()


def test_a_pool_that_cannot_be_read_never_fails_the_scrape(redis_server, registry, caplog):
    from prometheus_client import generate_latest

    client = redis.Redis(host=redis_server.host, port=redis_server.port, max_connections=8)
    watch = instrument_pool(client, name="broken", registry=registry)
    client.ping()

    def unreadable(pool):
        raise RuntimeError("pool internals changed")

    watch._stats = unreadable  # e.g. a redis-py release that renamed what the reader uses
    scrape = generate_latest(registry).decode()
    assert 'db_client_connection_max{pool_name="broken"} 8.0' in scrape  # the last values stay
    assert "reading its figures failed" in caplog.text
    client.close()


def test_gone_pools_drop_their_gauges_but_a_successor_of_the_same_name_keeps_them(redis_server, registry):
    import gc

    def connect(size: int) -> redis.Redis:
        client = redis.Redis(host=redis_server.host, port=redis_server.port, max_connections=size)
        client.ping()
        return client

    old = connect(3)
    instrument_pool(old, name="cache", registry=registry)
    gone = connect(4)
    instrument_pool(gone, name="sessions", registry=registry)
    collect(registry)
    assert gauge(registry, "db_client_connection_max", pool_name="sessions") == 4
    old.close()
    gone.close()
    del old, gone
    gc.collect()
    successor = connect(5)  # e.g. the app re-created its client on restart
    instrument_pool(successor, name="cache", registry=registry)
    collect(registry)
    collect(registry)
    assert gauge(registry, "db_client_connection_max", pool_name="sessions") is None
    assert gauge(registry, "db_client_connection_max", pool_name="cache") == 5
    assert gauge(registry, "db_client_connection_count", pool_name="cache", state="idle") == 1
    successor.close()


def _pool_info(registry, pool: str) -> dict[str, str]:
    collect(registry)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "db_client_connection_pool_info" and sample.labels["pool_name"] == pool:
                assert sample.value == 1
                return {k: v for k, v in sample.labels.items() if k != "pool_name"}
    raise AssertionError(f"no db_client_connection_pool_info for {pool}")


def test_pool_settings_are_exported_as_info(postgres, redis_server, registry):
    pool = ConnectionPool(postgres.dsn(), min_size=1, max_size=20, max_idle=30, timeout=2, open=True, name="tuned")
    instrument_pool(pool, registry=registry)
    assert _pool_info(registry, "tuned") == {"min": "1", "max": "20", "idle_timeout_seconds": "30",
                                             "connect_timeout_seconds": "2"}
    engine = create_engine(postgres.dsn().replace("postgresql://", "postgresql+psycopg://"), pool_size=5,
                           max_overflow=10, pool_timeout=3)
    instrument_pool(engine, name="orm", registry=registry)
    assert _pool_info(registry, "orm") == {"min": "", "max": "15", "idle_timeout_seconds": "",
                                           "connect_timeout_seconds": "3"}
    client = redis.Redis.from_url(redis_server.url, max_connections=8, socket_connect_timeout=1.5)
    instrument_pool(client, name="cache", registry=registry)
    assert _pool_info(registry, "cache") == {"min": "", "max": "8", "idle_timeout_seconds": "",
                                             "connect_timeout_seconds": "1.5"}
    pool.close()
    engine.dispose()
    client.close()


async def test_asyncpg_pool_settings(postgres, registry):
    pool = await asyncpg.create_pool(postgres.dsn(), min_size=2, max_size=4, max_inactive_connection_lifetime=30,
                                     timeout=2)
    instrument_pool(pool, name="apg", registry=registry)
    assert _pool_info(registry, "apg") == {"min": "2", "max": "4", "idle_timeout_seconds": "30",
                                           "connect_timeout_seconds": "2"}
    await pool.close()
