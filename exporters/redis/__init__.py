"""The Redis exporter: one collector per concern, declared in :data:`COLLECTORS`.

The fast tier reads one shared ``INFO all`` per poll (stats, memory, clients, commands,
latency, keyspace, replication, persistence) plus the slow log; the slow tier reads the few
``CONFIG`` keys it needs and runs the TTL sampler. Works with Redis 6 and 7 and Valkey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stackwatch.core.options import Option, OptionError, positive_float, positive_int
from stackwatch.core.redis.connection import ConnectionSettings, InvalidURL, parse_redis_url, url_name
from stackwatch.core.redis.queue_spec import SYSTEMS, parse_queue_option, queue_specs
from stackwatch.core.redis.source import RedisOptions, RedisSource

from ..collector import Collector
from ..kinds import Common, select_collectors
from ..target import Target
from .clients import ClientsCollector
from .commands import CommandsCollector
from .config import ConfigCollector
from .keyspace import KeyspaceCollector
from .latency import LatencyCollector
from .latency_histogram import LatencyHistogramCollector
from .memory import MemoryCollector
from .persistence import PersistenceCollector
from .queues import QueuesCollector
from .replication import ReplicationCollector
from .slowlog import SlowlogCollector
from .stats import StatsCollector
from .target import RedisTarget
from .ttl_sampler import TtlSamplerCollector

__all__ = ["COLLECTORS", "KIND", "OPTIONS", "RedisOptions", "RedisTarget"]

#: Every Redis collector and whether it runs by default (``default_enabled`` on the class).
COLLECTORS: Sequence[type[Collector[RedisSource]]] = (
    StatsCollector,
    MemoryCollector,
    ClientsCollector,
    CommandsCollector,
    LatencyCollector,
    LatencyHistogramCollector,
    KeyspaceCollector,
    ReplicationCollector,
    PersistenceCollector,
    SlowlogCollector,
    ConfigCollector,
    TtlSamplerCollector,
    QueuesCollector,
)


def _delimiter(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


OPTIONS: Sequence[Option] = (
    Option("--redis-url", "STACKWATCH_REDIS_URL",
           "Redis to monitor: redis://[user:password@]host:port/db, or rediss:// for TLS "
           "(?ssl_ca_certs=PATH for a private CA); newline-separated in the environment",
           repeat=True, secret=True, metavar="URL"),
    Option("--redis-timeout-seconds", "STACKWATCH_REDIS_TIMEOUT_SECONDS",
           "socket connect and read timeout of the exporter's Redis connection", default=5.0,
           parse=positive_float, metavar="SECONDS"),
    Option("--redis-ttl-sample-keys", "STACKWATCH_REDIS_TTL_SAMPLE_KEYS",
           "most keys the TTL sampler checks per run (one PTTL each)", default=10_000, parse=positive_int,
           metavar="N"),
    Option("--redis-ttl-sample-seconds", "STACKWATCH_REDIS_TTL_SAMPLE_SECONDS",
           "most seconds one TTL sampler run may take", default=2.0, parse=positive_float, metavar="SECONDS"),
    Option("--redis-ttl-prefixes-max", "STACKWATCH_REDIS_TTL_PREFIXES_MAX",
           "key prefixes reported by the TTL sampler before the `(other)` group", default=20,
           parse=positive_int, metavar="N"),
    Option("--redis-ttl-prefix-delimiter", "STACKWATCH_REDIS_TTL_PREFIX_DELIMITER",
           "a key's prefix is the text before the first occurrence of this", default=":",
           parse=_delimiter, metavar="TEXT"),
    Option("--redis-queue", "STACKWATCH_REDIS_QUEUES",
           f"job queues to read, as SYSTEM:PATTERN (SYSTEM one of {', '.join(SYSTEMS)}; PATTERN a key or a "
           "glob such as rq:queue:*), or `auto` for the layouts whose key names their library fixes (RQ, "
           "arq, Dramatiq, Bull, Celery's default queue; within the SCAN budgets); one per line in the "
           "environment", repeat=True, parse=parse_queue_option, metavar="SYSTEM:PATTERN"),
    Option("--redis-queues-max", "STACKWATCH_REDIS_QUEUES_MAX",
           "queues per system exported by name before the `(other)` rollup", default=50, parse=positive_int,
           metavar="N"),
)


class _RedisKind:
    prefix = "redis"
    title = "Redis"
    options = OPTIONS
    collectors = COLLECTORS
    targets_file_key = "redis_url"

    def _options(self, values: Mapping[str, Any]) -> RedisOptions:
        timeout = values.get("redis_timeout_seconds") or 5.0
        return RedisOptions(
            ttl_sample_keys=values.get("redis_ttl_sample_keys") or 10_000,
            ttl_sample_seconds=values.get("redis_ttl_sample_seconds") or 2.0,
            ttl_prefixes_max=values.get("redis_ttl_prefixes_max") or 20,
            ttl_prefix_delimiter=values.get("redis_ttl_prefix_delimiter") or ":",
            queues=queue_specs(values.get("redis_queue")),
            queues_max=values.get("redis_queues_max") or 50,
            connection=ConnectionSettings(socket_timeout=timeout, connect_timeout=timeout),
        )

    def _target(self, name: str, url: str, common: Common, options: RedisOptions) -> RedisTarget:
        collectors = [cls() for cls in select_collectors(self, common)]
        return RedisTarget(name, url, collectors, common.intervals, options)

    def targets(self, values: Mapping[str, Any], common: Common) -> list[Target[Any]]:
        options = self._options(values)
        urls = values.get("redis_url") or []
        for url in urls:  # checked here, not in Option.parse, so the (redacted) reason is shown
            try:
                parse_redis_url(url)
            except InvalidURL as error:
                raise OptionError(f"--redis-url/$STACKWATCH_REDIS_URL: {error}") from None
        return [self._target(url_name(url), url, common, options) for url in urls]

    def probe_target(self, name: str, entry: Mapping[str, Any], values: Mapping[str, Any],
                     common: Common) -> Target[Any] | None:
        if self.targets_file_key not in entry:
            return None
        url = str(entry[self.targets_file_key])
        try:
            parse_redis_url(url)
        except InvalidURL as error:
            raise OptionError(f"targets file, target {name!r}: {error}") from None
        return self._target(name, url, common, self._options(values))


KIND = _RedisKind()
