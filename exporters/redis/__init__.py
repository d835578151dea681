"""The Redis exporter: one collector per concern, declared in :data:`COLLECTORS`.

The fast tier reads one shared ``INFO all`` per poll (stats, memory, clients, commands,
latency, keyspace, replication, persistence) plus the slow log; the slow tier reads the few
``CONFIG`` keys it needs and runs the TTL sampler. Works with Redis 6 and 7 and Valkey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stackwatch.core.options import Option, positive_float, positive_int
from stackwatch.core.redis.connection import ConnectionSettings, parse_redis_url, url_name
from stackwatch.core.redis.queue_spec import SYSTEMS, parse_queue_option, queue_specs
from stackwatch.core.redis.source import RedisOptions, RedisSource

from ..collector import Collector
from ..kinds import Common, ConnectedKind
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


#: the collectors' knobs as the dataclass declares them: every default below is written there once
_DEFAULT = RedisOptions()

OPTIONS: Sequence[Option] = (
    Option("--redis-url", "STACKWATCH_REDIS_URL",
           "Redis to monitor: redis://[user:password@]host:port/db, or rediss:// for TLS "
           "(?ssl_ca_certs=PATH for a private CA); newline-separated in the environment",
           repeat=True, secret=True, metavar="URL"),
    Option("--redis-timeout-seconds", "STACKWATCH_REDIS_TIMEOUT_SECONDS",
           "socket connect and read timeout of the exporter's Redis connection",
           default=_DEFAULT.connection.socket_timeout, parse=positive_float, metavar="SECONDS"),
    Option("--redis-ttl-sample-keys", "STACKWATCH_REDIS_TTL_SAMPLE_KEYS",
           "most keys the TTL sampler checks per run (one PTTL each)", default=_DEFAULT.ttl_sample_keys,
           parse=positive_int, metavar="N"),
    Option("--redis-ttl-sample-seconds", "STACKWATCH_REDIS_TTL_SAMPLE_SECONDS",
           "most seconds one TTL sampler run may take", default=_DEFAULT.ttl_sample_seconds, parse=positive_float,
           metavar="SECONDS"),
    Option("--redis-ttl-prefixes-max", "STACKWATCH_REDIS_TTL_PREFIXES_MAX",
           "key prefixes reported by the TTL sampler before the `(other)` group", default=_DEFAULT.ttl_prefixes_max,
           parse=positive_int, metavar="N"),
    Option("--redis-ttl-prefix-delimiter", "STACKWATCH_REDIS_TTL_PREFIX_DELIMITER",
           "a key's prefix is the text before the first occurrence of this", default=_DEFAULT.ttl_prefix_delimiter,
           parse=_delimiter, metavar="TEXT"),
    Option("--redis-queue", "STACKWATCH_REDIS_QUEUES",
           f"job queues to read, as SYSTEM:PATTERN (SYSTEM one of {', '.join(SYSTEMS)}; PATTERN a key or a "
           "glob such as rq:queue:*), or `auto` for the layouts whose key names their library fixes (RQ, "
           "arq, Dramatiq, Bull, Celery's default queue; within the SCAN budgets); one per line in the "
           "environment", repeat=True, parse=parse_queue_option, metavar="SYSTEM:PATTERN"),
    Option("--redis-queues-max", "STACKWATCH_REDIS_QUEUES_MAX",
           "queues per system exported by name before the `(other)` rollup", default=_DEFAULT.queues_max,
           parse=positive_int, metavar="N"),
)


class _RedisKind(ConnectedKind[RedisOptions]):
    prefix = "redis"
    title = "Redis"
    options = OPTIONS
    collectors = COLLECTORS
    targets_file_key = "redis_url"

    def check_address(self, address: str) -> None:
        parse_redis_url(address)

    def target_name(self, address: str) -> str:
        return url_name(address)

    def kind_options(self, values: Mapping[str, Any]) -> RedisOptions:
        timeout = values.get("redis_timeout_seconds") or _DEFAULT.connection.socket_timeout
        return RedisOptions(
            ttl_sample_keys=values.get("redis_ttl_sample_keys") or _DEFAULT.ttl_sample_keys,
            ttl_sample_seconds=values.get("redis_ttl_sample_seconds") or _DEFAULT.ttl_sample_seconds,
            ttl_prefixes_max=values.get("redis_ttl_prefixes_max") or _DEFAULT.ttl_prefixes_max,
            ttl_prefix_delimiter=values.get("redis_ttl_prefix_delimiter") or _DEFAULT.ttl_prefix_delimiter,
            queues=queue_specs(values.get("redis_queue")),
            queues_max=values.get("redis_queues_max") or _DEFAULT.queues_max,
            connection=ConnectionSettings(socket_timeout=timeout, connect_timeout=timeout),
        )

    def new_target(self, name: str, address: str, collectors: list[Collector[Any]], common: Common,
                   options: RedisOptions) -> RedisTarget:
        return RedisTarget(name, address, collectors, common.intervals, options)


KIND = _RedisKind()
