"""Cache-aside for redis-py (sync and asyncio) with TTLs, write-through and invalidation.

Every lookup counts in ``cache_requests_total{cache, result=hit|miss}`` and sets ``cache.hit`` on
the current span. Values are JSON by default (pass ``dumps``/``loads`` for another format).
Pattern invalidation walks the keyspace with ``SCAN`` and deletes in batches with ``UNLINK``:
``KEYS`` would block Redis for the whole keyspace.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from prometheus_client import CollectorRegistry

from .metrics import get_metrics

__all__ = ["AsyncCache", "Cache"]

T = TypeVar("T")
Client = TypeVar("Client")


class _CacheBase(Generic[Client]):
    """Key naming, serialization and hit/miss accounting shared by both flavours."""

    def __init__(
        self,
        client: Client,
        name: str = "default",
        *,
        ttl: float = 300,
        prefix: str | None = None,
        dumps: Callable[[Any], str | bytes] = json.dumps,
        loads: Callable[[str | bytes], Any] = json.loads,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl: expected a positive number of seconds, got {ttl!r}")
        self.client = client
        self.name = name
        self.ttl = ttl
        self.prefix = f"{name}:" if prefix is None else prefix
        self._dumps = dumps
        self._loads = loads
        counter = get_metrics(registry).cache_requests
        self._hits = counter.labels(name, "hit")
        self._misses = counter.labels(name, "miss")

    def key(self, key: str) -> str:
        """The Redis key for ``key`` (with the cache's prefix)."""
        return self.prefix + key

    def _px(self, ttl: float | None) -> int:
        return max(1, int((self.ttl if ttl is None else ttl) * 1000))

    def _seen(self, raw: Any) -> bool:
        hit = raw is not None
        (self._hits if hit else self._misses).inc()
        trace.get_current_span().set_attribute("cache.hit", hit)
        return hit


class Cache(_CacheBase[Any]):
    """Cache-aside over a synchronous ``redis.Redis`` client."""

    def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or ``default`` on a miss."""
        raw = self.client.get(self.key(key))
        return self._loads(raw) if self._seen(raw) else default

    def get_or_load(self, key: str, loader: Callable[[], T], ttl: float | None = None) -> T:
        """Cache-aside: the cached value, or ``loader()`` stored with the TTL on a miss."""
        raw = self.client.get(self.key(key))
        if self._seen(raw):
            return self._loads(raw)  # type: ignore[no-any-return]
        value = loader()
        self.set(key, value, ttl)
        return value

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` with a TTL (the cache default unless given)."""
        self.client.set(self.key(key), self._dumps(value), px=self._px(ttl))

    def write_through(self, key: str, value: T, writer: Callable[[T], Any], ttl: float | None = None) -> Any:
        """Write ``value`` to the source of truth with ``writer``, then to the cache; returns the writer's result."""
        result = writer(value)
        self.set(key, value, ttl)
        return result

    def invalidate(self, *keys: str) -> int:
        """Delete ``keys``; the number that existed."""
        return int(self.client.unlink(*(self.key(k) for k in keys))) if keys else 0

    def invalidate_pattern(self, pattern: str, batch: int = 500) -> int:
        """Delete every key matching the glob ``pattern`` (under the prefix) using SCAN; the count deleted."""
        deleted = 0
        chunk: list[Any] = []
        for found in self.client.scan_iter(match=self.key(pattern), count=batch):
            chunk.append(found)
            if len(chunk) >= batch:
                deleted += int(self.client.unlink(*chunk))
                chunk = []
        if chunk:
            deleted += int(self.client.unlink(*chunk))
        return deleted


class AsyncCache(_CacheBase[Any]):
    """Cache-aside over a ``redis.asyncio.Redis`` client."""

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or ``default`` on a miss."""
        raw = await self.client.get(self.key(key))
        return self._loads(raw) if self._seen(raw) else default

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[T]], ttl: float | None = None) -> T:
        """Cache-aside: the cached value, or ``await loader()`` stored with the TTL on a miss."""
        raw = await self.client.get(self.key(key))
        if self._seen(raw):
            return self._loads(raw)  # type: ignore[no-any-return]
        value = await loader()
        await self.set(key, value, ttl)
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` with a TTL (the cache default unless given)."""
        await self.client.set(self.key(key), self._dumps(value), px=self._px(ttl))

    async def write_through(
        self, key: str, value: T, writer: Callable[[T], Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        """Write ``value`` with ``await writer(value)``, then to the cache; returns the writer's result."""
        result = await writer(value)
        await self.set(key, value, ttl)
        return result

    async def invalidate(self, *keys: str) -> int:
        """Delete ``keys``; the number that existed."""
        return int(await self.client.unlink(*(self.key(k) for k in keys))) if keys else 0

    async def invalidate_pattern(self, pattern: str, batch: int = 500) -> int:
        """Delete every key matching the glob ``pattern`` (under the prefix) using SCAN; the count deleted."""
        deleted = 0
        chunk: list[Any] = []
        async for found in self.client.scan_iter(match=self.key(pattern), count=batch):
            chunk.append(found)
            if len(chunk) >= batch:
                deleted += int(await self.client.unlink(*chunk))
                chunk = []
        if chunk:
            deleted += int(await self.client.unlink(*chunk))
        return deleted
