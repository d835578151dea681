"""Redis items: hit rate over a window, keys without TTL, maxmemory and its eviction policy,
commands that block or empty the whole server.

Whatever samples TTLs must not change the hit rate: Redis counts every ``PTTL``/``TTL`` as a
keyspace hit, so every measurement leaves them out (``cmdstat_pttl``/``cmdstat_ttl`` calls, read
in the same INFO as the keyspace counters). With ``--prometheus-url`` the hit rate is the
application's ``cache_requests_total`` when the service is instrumented, else the Redis rate over
the rules' window, and the TTL item reads the exporter's TTL sampler instead of sampling again
(:mod:`.redis_series`). Otherwise the check samples TTLs itself and measures the hit rate from two
``INFO`` readings ``--redis-window`` seconds apart. When too few lookups happened in that window
to mean anything the item is ``unknown``: counters since the server started mix in traffic long
gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from stackwatch.core.redact import redact, redact_text
from stackwatch.core.redis.connection import QUEUE_READER_NAME, ConnectionSettings, InvalidURL, connect, url_name
from stackwatch.core.redis.info import Info, command_stats, parse_number
from stackwatch.core.redis.lookups import client_lookups, ttl_lookups
from stackwatch.core.redis.queue_spec import KNOWN_LAYOUTS, QueueSpec
from stackwatch.core.redis.queues import QueueReader
from stackwatch.core.redis.source import RedisOptions, RedisSource
from stackwatch.core.redis.ttl_sampler import sample_ttls

from ..thresholds import JOBS, RATE_WINDOW, REDIS, JobThresholds, RedisThresholds
from .items import DANGEROUS, HIT_RATE, MAXMEMORY, QUEUES, TTL
from .items import REDIS_ITEMS as ITEMS
from .jobs import queues_finding, queues_from_prometheus
from .model import Finding, Item, SourceUnavailable, Status
from .promapi import Prometheus, PrometheusError
from .redis_series import HIT_FIX, hit_rate_from_prometheus, maxmemory_finding, ttl_finding, ttl_from_prometheus
from .runner import Budget

__all__ = ["ITEMS", "RedisCheck"]

_DANGEROUS_FIX = ("invalidate by pattern with SCAN + UNLINK in batches (stackwatch Cache.invalidate_pattern) instead "
                 "of KEYS; never FLUSHALL/FLUSHDB a shared cache (delete by prefix), BGSAVE instead of SAVE; deny "
                 "them to the application's ACL user (-keys -flushall -flushdb -save)")


@dataclass
class RedisCheck:
    """The Redis items for one URL (its database number is the one the TTL sample walks)."""

    url: str
    window: float = 5.0
    sample_keys: int = 1000
    prometheus: Prometheus | None = None
    thresholds: RedisThresholds = REDIS
    queues: tuple[QueueSpec, ...] = ()
    jobs: JobThresholds = JOBS

    def run(self, budget: Budget) -> Iterator[Finding]:
        try:
            client = connect(self.url, ConnectionSettings(budget.seconds(), budget.seconds()))
        except InvalidURL as error:
            raise SourceUnavailable(f"--redis-url: {error}") from None
        except redis.RedisError as error:
            raise SourceUnavailable(f"cannot connect to {redact(self.url)}: {redact_text(str(error))}") from None
        source = RedisSource(client, RedisOptions())  # INFO parsed as the exporter parses it
        try:
            yield self._guarded(MAXMEMORY, lambda: self._maxmemory(source))
            yield self._guarded(TTL, lambda: self._ttl(client, budget))
            yield self._guarded(HIT_RATE, lambda: self._hit_rate(source, budget))
            yield self._guarded(DANGEROUS, lambda: self._dangerous(source))
            yield self._guarded(QUEUES, lambda: self._queues(client))
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

    def _maxmemory(self, source: RedisSource) -> Finding:
        info = source.info()
        return maxmemory_finding(info.number("maxmemory") or 0.0, info.text("maxmemory_policy") or "?",
                                 info.number("used_memory") or 0.0, self.thresholds)

    def _dangerous(self, source: RedisSource) -> Finding:
        """Calls since the server started (or ``CONFIG RESETSTAT``), from ``INFO commandstats``: one
        KEYS in production is one too many, however long ago, until someone looks."""
        info = source.info()
        stats = command_stats(info)
        calls = {cmd: parse_number(stats[cmd].get("calls", "")) or 0.0
                 for cmd in self.thresholds.dangerous_commands if cmd in stats}
        called = {cmd.upper(): n for cmd, n in calls.items() if n > 0}
        hours = (info.number("uptime_in_seconds") or 0.0) / 3600
        since = f"in {hours:.1f}h since the server started or CONFIG RESETSTAT"
        if called:
            listed = ", ".join(f"{cmd} {n:.0f} call(s)" for cmd, n in sorted(called.items()))
            return DANGEROUS.finding(Status.FAIL, f"{listed} {since}", _DANGEROUS_FIX)
        watched = "/".join(c.upper() for c in self.thresholds.dangerous_commands)
        return DANGEROUS.finding(Status.PASS, f"no {watched} call {since} (INFO commandstats)")

    def _from_prometheus(self, judge: Any) -> Finding | None:
        """``judge(prometheus)``, or None without a usable Prometheus (its own source reports why)."""
        if self.prometheus is None:
            return None
        try:
            result: Finding | None = judge(self.prometheus)
            return result
        except (PrometheusError, SourceUnavailable):
            return None

    def _ttl(self, client: redis.Redis, budget: Budget) -> Finding:
        """The exporter's sample when Prometheus has one of this server: sampling again would cost
        Redis as much and add nothing."""
        exported = self._from_prometheus(lambda prom: ttl_from_prometheus(prom, url_name(self.url), self.thresholds))
        if exported is not None:
            return exported
        sample = sample_ttls(client, self.sample_keys, budget.seconds(min(2.0, budget.timeout)))
        if not sample.sampled:
            return TTL.finding(Status.UNKNOWN, "no keys in this database to sample",
                               "point --redis-url at the cache's database (e.g. redis://host:6379/1)")
        without = sum(counts[1] for counts in sample.prefixes.values())
        cover = f"{sample.sampled} of {sample.dbsize} keys sampled" + (" (budget reached)" if sample.truncated else "")
        return ttl_finding(without, sample.sampled, [(c[1], p) for p, c in sample.bounded(10).items()], cover,
                           self.thresholds)

    def _queues(self, client: redis.Redis) -> Finding:
        """The exporter's queue series when Prometheus has them, else the queues read here, with the
        exporter's own reader (``--redis-queue``, else the layouts whose key names are fixed)."""
        exported = self._from_prometheus(lambda prom: queues_from_prometheus(prom, self.jobs))
        if exported is not None:
            return exported
        specs = self.queues or KNOWN_LAYOUTS
        readings = QueueReader().read(RedisSource(client, RedisOptions(queues=specs)))
        if not self.queues:  # a default layout counts where it holds something, not merely by its name
            readings = [r for r in readings if any(r.depth.values()) or r.workers]
        named = ", ".join(f"{s.system}:{s.pattern}" for s in specs)
        return queues_finding(readings, f"read from Redis: {named}", jobs=self.jobs)

    def _hit_rate(self, source: RedisSource, budget: Budget) -> Finding:
        """Measured after the TTL sample; TTL lookups are left out of every reading anyway."""
        measured = self._from_prometheus(lambda prom: hit_rate_from_prometheus(prom, self.thresholds))
        if measured is not None:
            return measured
        began, first = time.monotonic(), self._info(source)
        time.sleep(max(0.0, min(self.window, budget.remaining() - 1)))
        second = self._info(source)
        seconds = max(time.monotonic() - began, 1e-3)
        ttl = ttl_lookups(second) - ttl_lookups(first)
        window = client_lookups(_number(second, "keyspace_hits") - _number(first, "keyspace_hits"),
                                _number(second, "keyspace_misses") - _number(first, "keyspace_misses"), ttl)
        hits, misses = window or (0.0, 0.0)
        if hits + misses >= self.thresholds.min_lookups_per_second * seconds and hits + misses > 0:
            judged = self._judge(hits, misses, f"over {seconds:.1f}s of INFO during the check; {ttl:.0f} TTL "
                                               "lookups left out")
            if judged.status is Status.FAIL and _queue_reader_connected(source.client):
                return HIT_RATE.finding(
                    Status.UNKNOWN, f"{judged.evidence}; but a stackwatch exporter reading job queues was connected: "
                    "its reads (--redis-queue) count as lookups in INFO and cannot be told from the application's "
                    "here", "pass --prometheus-url: the exporter's series leave its own reads out")
            return judged
        lifetime = client_lookups(_number(second, "keyspace_hits"), _number(second, "keyspace_misses"),
                                  ttl_lookups(second))
        since = (f"; since the server started {lifetime[0] / sum(lifetime):.1%} of {sum(lifetime):.0f} lookups "
                 "(TTL lookups left out)" if lifetime else "")
        return HIT_RATE.finding(Status.UNKNOWN, f"{hits + misses:.0f} lookups in the {seconds:.1f}s window, too "
                                f"few to judge (under {self.thresholds.min_lookups_per_second:g}/s){since}",
                                "run the check while the application serves traffic, raise --redis-window, or "
                                "pass --prometheus-url for the rate over the last " + RATE_WINDOW)

    @staticmethod
    def _info(source: RedisSource) -> Info:
        source.new_poll()
        return source.info()

    def _judge(self, hits: float, misses: float, where: str) -> Finding:
        ratio = hits / (hits + misses)
        evidence = f"hit ratio {ratio:.1%} ({hits:.0f} hits, {misses:.0f} misses {where})"
        if ratio < self.thresholds.hit_ratio:
            return HIT_RATE.finding(Status.FAIL, evidence + f" < {self.thresholds.hit_ratio:.0%}", HIT_FIX)
        return HIT_RATE.finding(Status.PASS, evidence)


def _queue_reader_connected(client: Any) -> bool:
    """Whether a stackwatch exporter that reads job queues is connected (not known, so no, when the
    ACL refuses CLIENT LIST)."""
    try:
        return any(c.get("name") == QUEUE_READER_NAME for c in client.client_list())
    except redis.RedisError:
        return False


def _number(info: Info, key: str) -> float:
    return info.number(key) or 0.0
