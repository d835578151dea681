"""The Redis exporter: one collector per concern, declared in :data:`COLLECTORS`.

The fast tier reads one shared ``INFO all`` per poll (stats, memory, clients, commands,
latency, keyspace, replication, persistence) plus the slow log; the slow tier reads the few
``CONFIG`` keys it needs and runs the TTL sampler. Works with Redis 6 and 7 and Valkey.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackwatch.core.options import Option
from stackwatch.core.redis.connection import parse_redis_url, url_name
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

__all__ = ["ADDRESS", "COLLECTORS", "KIND", "RedisOptions", "RedisTarget"]

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


#: the addresses to monitor; every other option is declared on a field of :class:`RedisOptions`
ADDRESS = Option("--redis-url", "STACKWATCH_REDIS_URL",
                 "Redis to monitor: redis://[user:password@]host:port/db, or rediss:// for TLS "
                 "(?ssl_ca_certs=PATH for a private CA); newline-separated in the environment",
                 repeat=True, secret=True, metavar="URL")


class _RedisKind(ConnectedKind[RedisOptions]):
    prefix = "redis"
    title = "Redis"
    address = ADDRESS
    settings = RedisOptions
    collectors = COLLECTORS

    def check_address(self, address: str) -> None:
        parse_redis_url(address)

    def target_name(self, address: str) -> str:
        return url_name(address)

    def new_target(self, name: str, address: str, collectors: list[Collector[Any]], common: Common,
                   options: RedisOptions) -> RedisTarget:
        return RedisTarget(name, address, collectors, common.intervals, options)


KIND = _RedisKind()
