"""A Redis instance as an exporter target: one long-lived connection, reconnect on loss."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from stackwatch.core.redis import connection
from stackwatch.core.redis.own_lookups import OwnLookups
from stackwatch.core.redis.source import RedisOptions, RedisSource

from ..collector import Collector, Intervals
from ..target import ConnectedTarget

__all__ = ["RedisTarget"]


class RedisTarget(ConnectedTarget[RedisSource, RedisOptions]):
    prefix = "redis"
    address_key = "url"

    def __init__(self, name: str, url: str, collectors: Sequence[Collector[RedisSource]],
                 intervals: Intervals, options: RedisOptions) -> None:
        super().__init__(name, url, collectors, intervals, options)
        self._own = OwnLookups()  # the exporter's own lookups, left out of the hit ratio

    @staticmethod
    def check_address(address: str) -> None:
        connection.parse_redis_url(address)

    def open(self) -> RedisSource:
        name = connection.QUEUE_READER_NAME if self.options.queues else connection.CLIENT_NAME
        return RedisSource(connection.connect(self.address, self.options.connection, name), self.options, self._own)

    def close_source(self, source: RedisSource) -> None:
        source.client.close()

    def start_tick(self, source: RedisSource) -> None:
        source.new_poll()  # one INFO per tick, shared by the lane's collectors

    def classify_error(self, error: BaseException) -> str:
        return connection.classify_error(error)

    def is_connection_lost(self, error: BaseException, source: RedisSource) -> bool:
        return isinstance(error, (redis.ConnectionError, redis.TimeoutError))
