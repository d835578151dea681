"""Redis items: hit rate over a window, keys without TTL, maxmemory and its eviction policy.

The hit rate comes from Prometheus when ``--prometheus-url`` is given and it scrapes Redis
(``redis_keyspace_*_total`` over the rules' window); otherwise from two ``INFO stats`` readings
taken ``--redis-window`` seconds apart during the check. When too few lookups happened in that
window to mean anything the item is ``unknown``: the counters since the server started would mix
in every past TTL sample (``PTTL`` counts as a keyspace hit) and traffic long gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from ..exporters.redact import redact, redact_text
from ..exporters.redis.connection import ConnectionSettings, InvalidURL, connect
from ..exporters.redis.ttl_sampler import sample_ttls
from ..thresholds import RATE_WINDOW, REDIS, RedisThresholds
from .items import HIT_RATE, MAXMEMORY, TTL
from .items import REDIS_ITEMS as ITEMS
from .model import Finding, Item, SourceUnavailable, Status
from .promapi import Prometheus, PrometheusError
from ..promql import redis_lookup_rate
from .runner import Budget

__all__ = ["ITEMS", "RedisCheck"]


_HITS = redis_lookup_rate("hits", "server", RATE_WINDOW)
_MISSES = redis_lookup_rate("misses", "server", RATE_WINDOW)


@dataclass
class RedisCheck:
    """The Redis items for one URL (its database number is the one the TTL sample walks)."""

    url: str
    window: float = 5.0
    sample_keys: int = 1000
    prometheus: Prometheus | None = None
    thresholds: RedisThresholds = REDIS

    def run(self, budget: Budget) -> Iterator[Finding]:
        try:
            client = connect(self.url, ConnectionSettings(budget.seconds(), budget.seconds()))
        except InvalidURL as error:
            raise SourceUnavailable(f"--redis-url: {error}") from None
        except redis.RedisError as error:
            raise SourceUnavailable(f"cannot connect to {redact(self.url)}: {redact_text(str(error))}") from None
        try:
            yield self._guarded(MAXMEMORY, lambda: self._maxmemory(client))
            yield self._guarded(TTL, lambda: self._ttl(client, budget))
            yield self._guarded(HIT_RATE, lambda: self._hit_rate(client, budget))
        finally:
            client.close()

    def _guarded(self, item: Item, check: Any) -> Finding:
        try:
            result: Finding = check()
            return result
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise SourceUnavailable(f"lost the connection to {redact(self.url)}: {redact_text(str(error))}") from None
        except (redis.RedisError, PrometheusError) as error:
            return item.finding(Status.UNKNOWN, f"failed: {redact_text(str(error))}",
                                "allow INFO, SCAN and PTTL for the check's user")

    def _maxmemory(self, client: redis.Redis) -> Finding:
        memory = client.info("memory")
        limit, policy, used = int(memory.get("maxmemory", 0)), str(memory.get("maxmemory_policy", "?")), \
            int(memory.get("used_memory", 0))
        if limit == 0:
            return MAXMEMORY.finding(Status.FAIL, f"maxmemory 0 (unbounded; policy {policy}), {used} bytes used",
                                     "CONFIG SET maxmemory <bytes> (and in redis.conf), with "
                                     "maxmemory-policy allkeys-lru for a cache")
        evidence = f"maxmemory {limit} bytes, policy {policy}, {used / limit:.0%} used"
        if policy == "noeviction":
            return MAXMEMORY.finding(Status.WARN, evidence + ": writes fail once full",
                                     "CONFIG SET maxmemory-policy allkeys-lru (volatile-lru if it also holds "
                                     "keys that must not be evicted)")
        if used / limit > self.thresholds.memory_saturation:
            return MAXMEMORY.finding(Status.WARN, evidence + f" (over {self.thresholds.memory_saturation:.0%})",
                                     "raise maxmemory or shorten TTLs before evictions drop hot keys")
        return MAXMEMORY.finding(Status.PASS, evidence)

    def _ttl(self, client: redis.Redis, budget: Budget) -> Finding:
        sample = sample_ttls(client, self.sample_keys, budget.seconds(min(2.0, budget.timeout)))
        if not sample.sampled:
            return TTL.finding(Status.UNKNOWN, "no keys in this database to sample",
                               "point --redis-url at the cache's database (e.g. redis://host:6379/1)")
        without = sum(counts[1] for counts in sample.prefixes.values())
        ratio = without / sample.sampled
        worst = sorted(((c[1], p) for p, c in sample.bounded(10).items() if c[1]), reverse=True)[:5]
        cover = f"{sample.sampled} of {sample.dbsize} keys sampled" + (" (budget reached)" if sample.truncated else "")
        evidence = f"{ratio:.0%} of keys without TTL ({cover})"
        if worst:
            evidence += "; prefixes: " + ", ".join(f"{p} ({n})" for n, p in worst)
        if ratio > self.thresholds.keys_without_ttl_ratio:
            return TTL.finding(Status.FAIL, evidence + f" > {self.thresholds.keys_without_ttl_ratio:.0%}",
                               "set a TTL on every cache write (SET key value EX seconds); "
                               "EXPIRE the existing keys of those prefixes")
        return TTL.finding(Status.PASS, evidence)

    def _hit_rate(self, client: redis.Redis, budget: Budget) -> Finding:
        """Measured after the TTL sample: its PTTL calls count as keyspace hits."""
        if self.prometheus is not None:
            finding = self._hit_rate_prometheus()
            if finding is not None:
                return finding
        began, first = time.monotonic(), client.info("stats")
        time.sleep(max(0.0, min(self.window, budget.remaining() - 1)))
        second = client.info("stats")
        seconds = max(time.monotonic() - began, 1e-3)
        hits = int(second["keyspace_hits"]) - int(first["keyspace_hits"])
        misses = int(second["keyspace_misses"]) - int(first["keyspace_misses"])
        if hits + misses >= self.thresholds.min_lookups_per_second * seconds and hits + misses > 0:
            return self._judge(hits, misses, f"over {seconds:.1f}s of INFO stats during the check")
        total_hits, total_misses = int(second["keyspace_hits"]), int(second["keyspace_misses"])
        lifetime = (f"; since the server started {total_hits / (total_hits + total_misses):.1%} of "
                    f"{total_hits + total_misses} lookups, which also counts every TTL sample's PTTL as a hit"
                    if total_hits + total_misses else "")
        return HIT_RATE.finding(Status.UNKNOWN, f"{hits + misses} lookups in the {seconds:.1f}s window, too few "
                                f"to judge (under {self.thresholds.min_lookups_per_second:g}/s){lifetime}",
                                "run the check while the application serves traffic, raise --redis-window, or "
                                "pass --prometheus-url for the rate over the last " + RATE_WINDOW)

    def _hit_rate_prometheus(self) -> Finding | None:
        assert self.prometheus is not None
        hits = {r[0].get("server", ""): r[1] for r in self.prometheus.query(_HITS)}
        misses = {r[0].get("server", ""): r[1] for r in self.prometheus.query(_MISSES)}
        lookups = {s: hits[s] + misses.get(s, 0.0) for s in hits}
        busy = {s: n for s, n in lookups.items() if n >= self.thresholds.min_lookups_per_second}
        if not busy:
            return None
        ratios = sorted((hits[s] / n, s) for s, n in busy.items())
        listed = ", ".join(f"{s or 'redis'} {r:.1%}" for r, s in ratios)
        evidence = f"hit ratio over {RATE_WINDOW} from Prometheus: {listed}"
        if ratios[0][0] < self.thresholds.hit_ratio:
            return HIT_RATE.finding(Status.FAIL, evidence + f" < {self.thresholds.hit_ratio:.0%}", _HIT_FIX)
        return HIT_RATE.finding(Status.PASS, evidence)

    def _judge(self, hits: int, misses: int, where: str) -> Finding:
        ratio = hits / (hits + misses)
        evidence = f"hit ratio {ratio:.1%} ({hits} hits, {misses} misses {where})"
        if ratio < self.thresholds.hit_ratio:
            return HIT_RATE.finding(Status.FAIL, evidence + f" < {self.thresholds.hit_ratio:.0%}", _HIT_FIX)
        return HIT_RATE.finding(Status.PASS, evidence)


_HIT_FIX = ("cache what is read repeatedly (cache-aside), lengthen TTLs of hot keys, check for keys that are "
            "written but never read and for evictions (maxmemory too small)")
