"""What a Redis collector gets to work with on each poll.

``INFO all`` is fetched at most once per poll and shared: the INFO-based collectors (stats,
memory, clients, commands, latency, keyspace, replication, persistence) all read the same
parsed :class:`~.info.Info`, so a fast poll costs Redis one INFO whatever the number of
collectors. ``CONFIG GET`` asks for the few keys in :data:`CONFIG_KEYS` only (never
``CONFIG GET *``), one key per call so Redis 6 (one pattern per call) works too, pipelined
into one round trip, and is cached between the config collector's slow polls. The exporter's own
key reads go through :meth:`RedisSource.own_reads`, which measures what Redis counted of them
(:mod:`.own_lookups`), and :meth:`RedisSource.keyspace` gives the INFO counters without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from stackwatch.core.option_fields import option
from stackwatch.core.options import positive_float, positive_int

from .connection import ConnectionSettings
from .info import Info, parse_info
from .own_lookups import Lookups, MeasuredLookups, OwnLookups, lookups_of
from .queue_spec import SYSTEMS, QueueSpec, parse_queue_option, queue_specs

__all__ = ["CONFIG_KEYS", "RedisOptions", "RedisSource"]

#: At most this many of the exporter's own reads run in one transaction: Redis serves no other
#: client while a MULTI/EXEC runs (about 1.4 µs of server time per read), so a thousand queues'
#: reads are cut into sub-millisecond transactions, each measured between its own two INFOs.
OWN_READS_PER_TRANSACTION = 256

#: The only configuration keys the exporter reads.
CONFIG_KEYS: tuple[str, ...] = (
    "maxmemory",
    "maxmemory-policy",
    "maxclients",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "io-threads",
    "client-output-buffer-limit",
)


def _delimiter(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _timeouts(seconds: float) -> ConnectionSettings:
    return ConnectionSettings(socket_timeout=seconds, connect_timeout=seconds)


@dataclass(frozen=True)
class RedisOptions:
    """Knobs of the Redis collectors; those with a flag declare it (and its environment twin) here."""

    connection: ConnectionSettings = option(
        "--redis-timeout-seconds", "STACKWATCH_REDIS_TIMEOUT_SECONDS",
        "socket connect and read timeout of the exporter's Redis connection",
        default=ConnectionSettings.socket_timeout, parse=positive_float, metavar="SECONDS", convert=_timeouts)
    ttl_sample_keys: int = option("--redis-ttl-sample-keys", "STACKWATCH_REDIS_TTL_SAMPLE_KEYS",
                                  "most keys the TTL sampler checks per run (one PTTL each)", default=10_000,
                                  parse=positive_int, metavar="N")
    ttl_sample_seconds: float = option("--redis-ttl-sample-seconds", "STACKWATCH_REDIS_TTL_SAMPLE_SECONDS",
                                       "most seconds one TTL sampler run may take", default=2.0,
                                       parse=positive_float, metavar="SECONDS")
    ttl_prefixes_max: int = option("--redis-ttl-prefixes-max", "STACKWATCH_REDIS_TTL_PREFIXES_MAX",
                                   "key prefixes reported by the TTL sampler before the `(other)` group",
                                   default=20, parse=positive_int, metavar="N")
    ttl_prefix_delimiter: str = option("--redis-ttl-prefix-delimiter", "STACKWATCH_REDIS_TTL_PREFIX_DELIMITER",
                                       "a key's prefix is the text before the first occurrence of this",
                                       default=":", parse=_delimiter, metavar="TEXT")
    ttl_scan_count: int = 1000
    slowlog_fetch: int = 256
    queues: tuple[QueueSpec, ...] = option(
        "--redis-queue", "STACKWATCH_REDIS_QUEUES",
        f"job queues to read, as SYSTEM:PATTERN (SYSTEM one of {', '.join(SYSTEMS)}; PATTERN a key or a "
        "glob such as rq:queue:*), or `auto` for the layouts whose key names their library fixes (RQ, "
        "arq, Dramatiq, Bull, Celery's default queue; within the SCAN budgets); one per line in the "
        "environment", repeat=True, parse=parse_queue_option, metavar="SYSTEM:PATTERN", convert=queue_specs)
    queues_max: int = option("--redis-queues-max", "STACKWATCH_REDIS_QUEUES_MAX",
                             "queues per system exported by name before the `(other)` rollup", default=50,
                             parse=positive_int, metavar="N")


def _raw(response: Any, **options: Any) -> Any:
    """Keep INFO's reply as text: our parser is version-tolerant where the client's is not."""
    return response


class RedisSource:
    """The live client plus per-poll caches (INFO) and per-slow-poll caches (CONFIG)."""

    def __init__(self, client: redis.Redis, options: RedisOptions, own: OwnLookups | None = None) -> None:
        self.client = client
        self.options = options
        self.own = own if own is not None else OwnLookups()
        self.client.set_response_callback("INFO", _raw)
        self._info: Info | None = None
        self._own_at_info = MeasuredLookups()
        self._config: dict[str, str] | None = None

    def new_poll(self) -> None:
        """Forget the previous poll's INFO so this poll reads fresh values."""
        self._info = None

    def info(self) -> Info:
        """``INFO all``, fetched once per poll and shared by every collector that needs it."""
        if self._info is None:
            self._info = parse_info(self.client.execute_command("INFO", "all"))
            self._own_at_info = self.own.queues.snapshot()
        return self._info

    def keyspace(self) -> Lookups | None:
        """This poll's ``keyspace_hits``/``keyspace_misses`` without the exporter's own queue reads
        (None when INFO lacks them): the lookups the applications made."""
        counters = lookups_of(self.info())
        return None if counters is None else self._own_at_info.left_out(counters)

    def own_reads(self) -> Pipeline:
        """A pipeline collecting the exporter's own key reads; run it with :meth:`execute_own`."""
        return self.client.pipeline(transaction=True)

    def execute_own(self, pipe: Pipeline) -> list[Any]:
        """Run the reads queued on ``pipe`` (from :meth:`own_reads`) and return their replies,
        errors in place. They run in transactions of at most :data:`OWN_READS_PER_TRANSACTION`
        reads, each between two ``INFO stats``: the lookups Redis counted in between -- this
        transaction's own, nobody else's -- go to ``own.queues``."""
        reads, replies = list(pipe.command_stack), []
        pipe.reset()
        for start in range(0, len(reads), OWN_READS_PER_TRANSACTION):
            batch = self.client.pipeline(transaction=True)
            batch.execute_command("INFO", "stats")
            for args, options in reads[start:start + OWN_READS_PER_TRANSACTION]:
                batch.execute_command(*args, **options)
            batch.execute_command("INFO", "stats")
            done = batch.execute(raise_on_error=False)
            self.own.queues.add(_counters(done[0]), _counters(done[-1]))
            replies.extend(done[1:-1])
        return replies

    def config(self, refresh: bool = False) -> Mapping[str, str]:
        """The values of :data:`CONFIG_KEYS` (cached; ``refresh`` re-reads them)."""
        if self._config is None or refresh:
            pipe = self.client.pipeline(transaction=False)
            for key in CONFIG_KEYS:
                pipe.execute_command("CONFIG", "GET", key)
            values: dict[str, str] = {}
            for reply in pipe.execute():
                pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
                values.update({_text(k): _text(v) for k, v in pairs})
            self._config = values
        return self._config


def _counters(reply: Any) -> Lookups:
    if isinstance(reply, Exception):
        raise reply
    counters = lookups_of(parse_info(reply))
    if counters is None:
        raise redis.ResponseError("INFO stats has no keyspace_hits/keyspace_misses")
    return counters


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
