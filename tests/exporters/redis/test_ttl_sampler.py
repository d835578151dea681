"""The TTL sampler on a real Redis holding 100,000+ keys: it stays inside its key and time
budgets (asserted on the keys it checked, Redis's own PTTL count and the truncated flag, never
on wall time) and its per-prefix estimates scale the sample to the keyspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stackwatch.core.redis.source import RedisOptions
from stackwatch.core.redis.ttl_sampler import NO_PREFIX, OTHER, prefix_of, sample_ttls
from stackwatch.exporters.redis.ttl_sampler import TtlSamplerCollector

from .collect import poll, real_source, sample, samples

# prefix -> (keys, keys with a TTL)
LAYOUT = {"user": (50_000, 0), "session": (30_000, 30_000), "cache": (20_000, 10_000)}
SMALL_PREFIXES = 30  # "p0:" .. "p29:", 10 keys each, none with a TTL
TOTAL = sum(n for n, _ in LAYOUT.values()) + SMALL_PREFIXES * 10 + 10  # + 10 keys without a delimiter


@pytest.fixture(scope="module")
def big_redis(redis_factory) -> Iterator[object]:
    server = redis_factory()
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for prefix, (count, with_ttl) in LAYOUT.items():
        for i in range(count):
            if i < with_ttl:
                pipe.set(f"{prefix}:{i}", 1, ex=3600)
            else:
                pipe.set(f"{prefix}:{i}", 1)
            if len(pipe) >= 5000:
                pipe.execute()
    for p in range(SMALL_PREFIXES):
        for i in range(10):
            pipe.set(f"p{p}:{i}", 1)
    for i in range(10):
        pipe.set(f"plainkey{i}", 1)
    pipe.execute()
    assert client.dbsize() == TOTAL
    yield server


def _pttl_calls(server) -> int:
    return int(server.client().info("commandstats").get("cmdstat_pttl", {}).get("calls", 0))


def test_key_budget(big_redis) -> None:
    before = _pttl_calls(big_redis)
    with real_source(big_redis.url) as source:
        result = sample_ttls(source.client, max_keys=5000, max_seconds=600)
    assert result.truncated
    assert result.checked == 5000
    assert result.sampled == 5000
    assert result.dbsize == TOTAL
    assert _pttl_calls(big_redis) - before == 5000  # Redis confirms: one PTTL per checked key, no more


def test_time_budget(big_redis) -> None:
    before = _pttl_calls(big_redis)
    with real_source(big_redis.url) as source:
        result = sample_ttls(source.client, max_keys=10**9, max_seconds=1e-9, scan_count=100)
    assert result.truncated
    assert 0 < result.checked < TOTAL  # stopped after the first SCAN batch
    assert result.checked <= 1000       # a SCAN COUNT 100 batch, with the hint's slack
    assert _pttl_calls(big_redis) - before == result.checked


def test_full_walk_is_exact(big_redis) -> None:
    with real_source(big_redis.url) as source:
        result = sample_ttls(source.client, max_keys=10**6, max_seconds=600, scan_count=5000)
    assert not result.truncated
    assert result.sampled == TOTAL
    assert result.prefixes["user"] == [50_000, 50_000]
    assert result.prefixes["session"] == [30_000, 0]
    assert result.prefixes["cache"] == [20_000, 10_000]
    assert result.prefixes[NO_PREFIX] == [10, 10]
    assert result.prefixes["p7"] == [10, 10]


def test_collector_estimates_and_bounded_prefixes(big_redis) -> None:
    options = RedisOptions(ttl_sample_keys=10_000, ttl_sample_seconds=60, ttl_prefixes_max=3)
    with real_source(big_redis.url, options) as source:
        families = poll(source, TtlSamplerCollector())
    assert sample(families, "redis_ttl_keys_sampled") == 10_000
    assert sample(families, "redis_ttl_sample_truncated") == 1
    ratios = {dict(labels)["prefix"]: value for labels, value in
              samples(families, "redis_ttl_keys_without_ttl_ratio").items()}
    assert set(ratios) == {"user", "session", "cache", OTHER}  # 3 biggest + the overflow group
    assert ratios["user"] == 1 and ratios["session"] == 0
    assert ratios["cache"] == pytest.approx(0.5, abs=0.05)
    estimated = sample(families, "redis_ttl_keys_without_ttl_estimated", prefix="user")
    assert estimated == pytest.approx(50_000, rel=0.1)  # a 10% sample scaled by DBSIZE
    assert sample(families, "redis_ttl_keys_without_ttl_estimated", prefix="cache") == \
        pytest.approx(10_000, rel=0.2)


def test_small_database_is_walked_completely(redis_factory) -> None:
    server = redis_factory()
    server.client().set("job:1", 1)
    server.client().set("job:2", 1, ex=60)
    with real_source(server.url) as source:
        families = poll(source, TtlSamplerCollector())
    assert sample(families, "redis_ttl_sample_truncated") == 0
    assert sample(families, "redis_ttl_keys_sampled") == 2
    assert sample(families, "redis_ttl_keys_without_ttl_ratio", prefix="job") == 0.5
    assert sample(families, "redis_ttl_keys_without_ttl_estimated", prefix="job") == 1


def test_prefix_of() -> None:
    assert prefix_of(b"user:1:profile", b":") == "user"
    assert prefix_of(b"plain", b":") == NO_PREFIX
    assert prefix_of(b"a/b", b"/") == "a"
    assert prefix_of(b"\xff\xfe:1", b":") == "\\xff\\xfe"
    assert len(prefix_of(b"x" * 500 + b":1", b":")) == 64
    # real prefixes spelled like a group keep the delimiter, which no other prefix label has
    assert prefix_of(b"(other):1", b":") == "(other):" and prefix_of(b"(none)/1", b"/") == "(none)/"
    assert prefix_of(b"other:1", b":") == "other" != OTHER


def test_real_other_prefixes_never_merge_into_the_groups(redis_factory) -> None:
    """Keys under ``other:`` (once the rollup's own name), ``(other):`` and ``(none):`` next to
    many small prefixes: every real prefix keeps its own series, the groups theirs."""
    server = redis_factory()
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(40):
        pipe.set(f"other:{i}", 1)  # no TTL: ratio 1
        pipe.set(f"(other):{i}", 1, ex=600)  # all with a TTL: ratio 0
        pipe.set(f"(none):{i}", 1, ex=600)
    for p in range(10):
        pipe.set(f"small{p}:1", 1, ex=600)
    pipe.set("plain", 1, ex=600)
    pipe.execute()
    with real_source(server.url, RedisOptions(ttl_prefixes_max=3)) as source:
        families = poll(source, TtlSamplerCollector())
    ratios = {dict(labels)["prefix"]: value for labels, value in
              samples(families, "redis_ttl_keys_without_ttl_ratio").items()}
    assert ratios == {"other": 1.0, "(other):": 0.0, "(none):": 0.0, OTHER: 0.0}
    estimated = {dict(labels)["prefix"]: value for labels, value in
                 samples(families, "redis_ttl_keys_without_ttl_estimated").items()}
    assert estimated == {"other": 40, "(other):": 0, "(none):": 0, OTHER: 0}
