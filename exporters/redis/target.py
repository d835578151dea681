"""A Redis instance as an exporter target: one long-lived connection, reconnect on loss."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from ..collector import Collector, Intervals
from ..redact import redact
from ..target import Target
from . import connection
from .source import OwnLookups, RedisOptions, RedisSource

__all__ = ["RedisTarget"]


class RedisTarget(Target[RedisSource]):
    prefix = "redis"

    def __init__(self, name: str, url: str, collectors: Sequence[Collector[RedisSource]],
                 intervals: Intervals, options: RedisOptions) -> None:
        connection.parse_redis_url(url)  # fail fast on a malformed URL, before any thread starts
        super().__init__(name, collectors, intervals)
        self.url = url
        self.options = options
        self._source: RedisSource | None = None
        self._own = OwnLookups()

    def connect(self) -> RedisSource:
        if self._source is None:
            client = connection.connect(self.url, self.options.connection)
            self._source = RedisSource(client, self.options, self._own)
        self._source.new_poll()
        return self._source

    def disconnect(self) -> None:
        if self._source is not None:
            try:
                self._source.client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone anyway
                pass
            self._source = None

    def classify_error(self, error: BaseException) -> str:
        return connection.classify_error(error)

    def is_connection_lost(self, error: BaseException) -> bool:
        return isinstance(error, (redis.ConnectionError, redis.TimeoutError))

    def describe_target(self) -> dict[str, object]:
        return {**super().describe_target(), "url": redact(self.url)}
