"""A Redis instance as an exporter target: one long-lived connection, reconnect on loss."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from stackwatch.core.redact import redact
from stackwatch.core.redis import connection
from stackwatch.core.redis.source import OwnLookups, RedisOptions, RedisSource

from ..collector import Collector, Intervals
from ..target import Target

__all__ = ["RedisTarget"]


class RedisTarget(Target[RedisSource]):
    prefix = "redis"

    def __init__(self, name: str, url: str, collectors: Sequence[Collector[RedisSource]],
                 intervals: Intervals, options: RedisOptions) -> None:
        connection.parse_redis_url(url)  # fail fast on a malformed URL, before any thread starts
        super().__init__(name, collectors, intervals)
        self.url = url
        self.options = options
        self._own = OwnLookups()

    def open(self) -> RedisSource:
        return RedisSource(connection.connect(self.url, self.options.connection), self.options, self._own)

    def close_source(self, source: RedisSource) -> None:
        source.client.close()

    def start_tick(self, source: RedisSource) -> None:
        source.new_poll()  # one INFO per tick, shared by the lane's collectors

    def classify_error(self, error: BaseException) -> str:
        return connection.classify_error(error)

    def is_connection_lost(self, error: BaseException, source: RedisSource) -> bool:
        return isinstance(error, (redis.ConnectionError, redis.TimeoutError))

    def describe_target(self) -> dict[str, object]:
        return {**super().describe_target(), "url": redact(self.url)}
