"""Redis items against real redis-servers: a cache with a low hit rate, keys without TTL and no
maxmemory, against a healthy one (TTLs, allkeys-lru under maxmemory, mostly hits)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.check.conftest import run_check
from tests.fixtures.exporter import ExporterProcess
from tests.fixtures.procs import wait_until
from tests.fixtures.redis import RedisServer


@contextmanager
def traffic(server: RedisServer, keys: list[str]) -> Iterator[None]:
    """GETs of ``keys`` in a loop while the block runs (hits or misses depending on the keys)."""
    stop = threading.Event()

    def loop() -> None:
        client = server.client()
        while not stop.is_set():
            for key in keys:
                client.get(key)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _check(server: RedisServer, *extra: str) -> Any:
    return run_check("--format", "json", "--redis-url", server.url, "--redis-window", "1", *extra)


def test_low_hit_rate_keys_without_ttl_and_no_maxmemory_fail(redis_factory: Any) -> None:
    server = redis_factory()
    client = server.client()
    for i in range(200):
        client.set(f"session:{i}", "x")
    with traffic(server, [f"user:{i}" for i in range(20)] + ["session:1"]):  # 1 hit in 21 lookups
        outcome = _check(server)
    hit = outcome.finding("redis.hit_rate")
    assert hit["status"] == "fail" and "during the check" in hit["evidence"], hit
    ttl = outcome.finding("redis.keys_without_ttl")
    assert ttl["status"] == "fail" and "100% of keys without TTL" in ttl["evidence"] and "session (200)" in \
        ttl["evidence"], ttl
    assert outcome.status("redis.maxmemory") == "fail"
    assert outcome.code == 1


def test_healthy_cache_passes(redis_factory: Any) -> None:
    server = redis_factory(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    client = server.client()
    for i in range(200):
        client.set(f"user:{i}", "x", ex=3600)
    client.set("config:flags", "x")  # one key without TTL in 201 is within the 10% allowance
    with traffic(server, [f"user:{i}" for i in range(20)]):
        outcome = _check(server)
    for item in ("redis.hit_rate", "redis.keys_without_ttl", "redis.maxmemory"):
        assert outcome.status(item) == "pass", outcome.finding(item)
    assert outcome.code == 0


def test_noeviction_under_maxmemory_warns(redis_factory: Any) -> None:
    outcome = _check(redis_factory(maxmemory="64mb", maxmemory_policy="noeviction"))
    finding = outcome.finding("redis.maxmemory")
    assert finding["status"] == "warn" and "allkeys-lru" in finding["fix"]


def test_quiet_window_is_unknown_rather_than_a_guess_from_lifetime_counters(redis_factory: Any) -> None:
    server = redis_factory()
    client = server.client()
    for i in range(10):
        client.set(f"user:{i}", "x", ex=60)
    for i in range(100):
        client.get(f"missing:{i}")
    finding = _check(server).finding("redis.hit_rate")
    assert finding["status"] == "unknown" and "--prometheus-url" in finding["fix"], finding
    assert "0 lookups in the" in finding["evidence"]
    # the check's own TTL sample (10 PTTL) counts as 10 hits in INFO: left out of the lifetime figure too
    assert "since the server started 0.0% of 100 lookups (TTL lookups left out)" in finding["evidence"], finding


def test_empty_database_is_unknown_not_pass(redis_factory: Any) -> None:
    outcome = _check(redis_factory())
    assert outcome.status("redis.keys_without_ttl") == "unknown"
    assert outcome.status("redis.hit_rate") == "unknown"


def test_password_is_used_and_never_shown(redis_factory: Any) -> None:
    server = redis_factory(requirepass="redis-pass-123")
    server.client().set("user:1", "x", ex=60)
    ok = _check(server)
    assert ok.code != 2 and ok.status("redis.keys_without_ttl") == "pass"
    wrong = run_check("--format", "table", "--redis-url", server.url.replace("redis-pass-123", "wrong-pass-456"))
    assert wrong.code == 2
    assert "wrong-pass-456" not in wrong.out + wrong.err and "redis-pass-123" not in ok.out + ok.err
    assert "error: redis:" in wrong.out


def test_keys_in_production_is_flagged_and_a_scan_only_server_passes(redis_factory: Any) -> None:
    dirty, clean = redis_factory(), redis_factory()
    for server in (dirty, clean):
        client = server.client()
        client.set("user:1", "x", ex=60)
        list(client.scan_iter("user:*"))  # SCAN is the fix, never flagged
    dirty.client().keys("user:*")
    flagged = _check(dirty).finding("redis.dangerous_commands")
    assert flagged["status"] == "fail" and "KEYS 1 call(s)" in flagged["evidence"], flagged
    assert "SCAN" in flagged["fix"] and "invalidate_pattern" in flagged["fix"], flagged
    passed = _check(clean).finding("redis.dangerous_commands")
    assert passed["status"] == "pass" and "no KEYS/FLUSHALL/FLUSHDB/SAVE call" in passed["evidence"], passed


@pytest.mark.parametrize("queues, expected", [(("--redis-queue", "list:jobs"), "unknown"), ((), "fail")])
def test_a_low_hit_rate_beside_a_queue_reading_exporter_is_unknown_not_a_false_fail(
        redis_factory: Any, queues: tuple[str, ...], expected: str) -> None:
    """An exporter with --redis-queue reads queue keys (misses on a missing list) that INFO counts
    with the application's lookups: beside it a low ratio may be the exporter's, so the check says
    so instead of failing (with --prometheus-url the exporter's series leave its own reads out);
    beside an exporter that reads no queue a low ratio still fails."""
    server = redis_factory()
    client = server.client()
    for i in range(200):
        client.set(f"user:{i}", "x", ex=3600)
    exporter = ExporterProcess("--redis-url", server.url, "--interval-fast", "1", *queues)
    try:
        wait_until(lambda: any(c.get("name", "").startswith("stackwatch") for c in client.client_list()), 30,
                   "the exporter's connection")
        with traffic(server, ["user:1", *(f"missing:{i}" for i in range(9))]):  # 1 hit in 10 lookups
            finding = _check(server).finding("redis.hit_rate")
    finally:
        exporter.stop()
    assert finding["status"] == expected, finding
    if expected == "unknown":
        assert "a stackwatch exporter reading job queues was connected" in finding["evidence"], finding
        assert "--prometheus-url" in finding["fix"]
