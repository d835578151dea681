"""Redis items judged from what Prometheus holds: the application's cache hit rate, the Redis hit
rate net of TTL lookups, the exporter's TTL sampler and its memory series.

``--redis-url`` checks (:mod:`.redis`) use these first, so a check never re-samples what the
exporter already sampled and never flatters the hit rate with its own lookups; with only
``--prometheus-url`` they are all there is (:class:`RedisSeriesCheck`). Standard library only:
no Redis client is needed to read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..promql import cache_request_rate, redis_lookup_rate
from ..thresholds import CACHE, RATE_WINDOW, REDIS, CacheThresholds, RedisThresholds
from .items import DANGEROUS, HIT_RATE, MAXMEMORY, QUEUES, TTL
from .jobs import queues_from_prometheus
from .model import Finding, Status
from .promapi import Prometheus
from .runner import Budget
from .series import judge_from_series, quoted

__all__ = ["RedisSeriesCheck", "hit_rate_from_prometheus", "maxmemory_finding", "ttl_finding",
           "ttl_from_prometheus"]

_HITS = redis_lookup_rate("hits", "server", RATE_WINDOW)
_MISSES = redis_lookup_rate("misses", "server", RATE_WINDOW)
_CACHE_BY = "job, cache"
HIT_FIX = ("cache what is read repeatedly (cache-aside), lengthen TTLs of hot keys, check for keys that are "
           "written but never read and for evictions (maxmemory too small)")
def _by(prom: Prometheus, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(m.get(label, "") for label in labels): v for m, v in prom.query(promql)}


def hit_rate_from_prometheus(prom: Prometheus, redis: RedisThresholds = REDIS,
                             cache: CacheThresholds = CACHE) -> Finding | None:
    """The hit-rate finding from Prometheus, or None when it has too few lookups to judge.

    The application's own ``cache_requests_total`` is preferred when the service is instrumented:
    it counts what the service asked for, whatever else talks to Redis. Otherwise Redis's
    keyspace counters, every TTL lookup left out (:func:`stackwatch.promql.redis_lookup_rate`).
    """
    server_side = _redis_ratios(prom, redis)
    requests = _by(prom, cache_request_rate(_CACHE_BY, RATE_WINDOW), "job", "cache")
    busy = {key: n for key, n in requests.items() if n >= cache.min_requests_per_second}
    if busy:
        hits = _by(prom, cache_request_rate(_CACHE_BY, RATE_WINDOW, "hit"), "job", "cache")
        ratios = sorted((hits.get(key, 0.0) / n, f"{key[1]} in {key[0]}") for key, n in busy.items())
        evidence = (f"application cache hit ratio over {RATE_WINDOW} (cache_requests_total): "
                    + ", ".join(f"{name} {ratio:.1%}" for ratio, name in ratios))
        if server_side:
            evidence += "; Redis keyspace, TTL lookups left out: " + _listed(server_side)
        if ratios[0][0] < cache.hit_ratio:
            return HIT_RATE.finding(Status.FAIL, evidence + f" < {cache.hit_ratio:.0%}", HIT_FIX)
        return HIT_RATE.finding(Status.PASS, evidence)
    if not server_side:
        return None
    evidence = f"hit ratio over {RATE_WINDOW} from Prometheus (TTL lookups left out): {_listed(server_side)}"
    if server_side[0][0] < redis.hit_ratio:
        return HIT_RATE.finding(Status.FAIL, evidence + f" < {redis.hit_ratio:.0%}", HIT_FIX)
    return HIT_RATE.finding(Status.PASS, evidence)


def _redis_ratios(prom: Prometheus, thresholds: RedisThresholds) -> list[tuple[float, str]]:
    """(ratio, server) of every Redis with enough client lookups, worst first."""
    hits = {m.get("server", ""): v for m, v in prom.query(_HITS)}
    misses = {m.get("server", ""): v for m, v in prom.query(_MISSES)}
    lookups = {s: hits[s] + misses.get(s, 0.0) for s in hits}
    return sorted((hits[s] / n, s or "redis") for s, n in lookups.items()
                  if n >= thresholds.min_lookups_per_second)


def _listed(ratios: list[tuple[float, str]]) -> str:
    return ", ".join(f"{name} {ratio:.1%}" for ratio, name in ratios)


def ttl_finding(without: float, total: float, prefixes: list[tuple[float, str]], coverage: str,
                thresholds: RedisThresholds = REDIS) -> Finding:
    """The TTL verdict from keys without a TTL out of ``total`` (sampled or estimated)."""
    ratio = without / total
    evidence = f"{ratio:.0%} of keys without TTL ({coverage})"
    worst = sorted((p for p in prefixes if p[0]), reverse=True)[:5]
    if worst:
        evidence += "; prefixes: " + ", ".join(f"{p} ({n:.0f})" for n, p in worst)
    if ratio > thresholds.keys_without_ttl_ratio:
        return TTL.finding(Status.FAIL, evidence + f" > {thresholds.keys_without_ttl_ratio:.0%}",
                           "set a TTL on every cache write (SET key value EX seconds); "
                           "EXPIRE the existing keys of those prefixes")
    return TTL.finding(Status.PASS, evidence)


def ttl_from_prometheus(prom: Prometheus, server: str | None,
                        thresholds: RedisThresholds = REDIS) -> Finding | None:
    """The TTL verdict from the exporter's sampler (``redis_ttl_keys_*``) for ``server`` (every
    sampled server, worst first, when None); None when Prometheus has no sample of it."""
    selector = f"{{server={quoted(server)}}}" if server is not None else ""
    sampled = {m.get("server", ""): v for m, v in prom.query(f"redis_ttl_keys_sampled{selector}") if v > 0}
    if not sampled:
        return None
    estimated: dict[str, list[tuple[float, str]]] = {}
    for labels, value in prom.query(f"redis_ttl_keys_without_ttl_estimated{selector}"):
        estimated.setdefault(labels.get("server", ""), []).append((value, labels.get("prefix", "")))
    keys = {m.get("server", ""): v for m, v in prom.query(f"sum by (server) (redis_db_keys{selector})")}
    findings = []
    for name, count in sampled.items():
        without = sum(n for n, _ in estimated.get(name, []))
        total = max(keys.get(name, 0.0), without, 1.0)
        coverage = (f"{name}: {count:.0f} of ~{total:.0f} keys sampled by the stackwatch exporter, "
                    "from Prometheus")
        findings.append(ttl_finding(without, total, estimated.get(name, []), coverage, thresholds))
    return max(findings, key=lambda f: (f.status == Status.FAIL, f.evidence))


def maxmemory_finding(limit: float, policy: str, used: float, thresholds: RedisThresholds = REDIS) -> Finding:
    if limit == 0:
        return MAXMEMORY.finding(Status.FAIL, f"maxmemory 0 (unbounded; policy {policy}), {used:.0f} bytes used",
                                 "CONFIG SET maxmemory <bytes> (and in redis.conf), with "
                                 "maxmemory-policy allkeys-lru for a cache")
    evidence = f"maxmemory {limit:.0f} bytes, policy {policy}, {used / limit:.0%} used"
    if policy == "noeviction":
        return MAXMEMORY.finding(Status.WARN, evidence + ": writes fail once full",
                                 "CONFIG SET maxmemory-policy allkeys-lru (volatile-lru if it also holds "
                                 "keys that must not be evicted)")
    if used / limit > thresholds.memory_saturation:
        return MAXMEMORY.finding(Status.WARN, evidence + f" (over {thresholds.memory_saturation:.0%})",
                                 "raise maxmemory or shorten TTLs before evictions drop hot keys")
    return MAXMEMORY.finding(Status.PASS, evidence)


@dataclass
class RedisSeriesCheck:
    """The Redis items from Prometheus alone (no ``--redis-url``): every Redis the exporter watches."""

    url: str
    thresholds: RedisThresholds = REDIS

    def run(self, budget: Budget) -> Iterator[Finding]:
        yield from judge_from_series(self.url, budget, (
            (MAXMEMORY, self._maxmemory),
            (TTL, lambda prom: ttl_from_prometheus(prom, None, self.thresholds)),
            (HIT_RATE, lambda prom: hit_rate_from_prometheus(prom, self.thresholds)),
            (DANGEROUS, None), (QUEUES, queues_from_prometheus)), "--redis-url")

    def _maxmemory(self, prom: Prometheus) -> Finding | None:
        limits = {m.get("server", ""): v for m, v in prom.query("redis_memory_max_bytes")}
        if not limits:
            return None
        used = {m.get("server", ""): v for m, v in prom.query("redis_memory_used_bytes")}
        policies = {m.get("server", ""): m.get("maxmemory_policy", "?")
                    for m, _ in prom.query("redis_instance_info")}
        order = (Status.FAIL, Status.WARN, Status.PASS)
        server, worst = min(((s, maxmemory_finding(limit, policies.get(s, "?"), used.get(s, 0.0), self.thresholds))
                             for s, limit in sorted(limits.items())), key=lambda pair: order.index(pair[1].status))
        more = f" (the worst of {len(limits)} Redis servers)" if len(limits) > 1 else ""
        return MAXMEMORY.finding(worst.status, f"{server}: {worst.evidence}{more}", worst.fix)
