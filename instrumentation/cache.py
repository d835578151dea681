"""Cache-aside for redis-py (sync and asyncio) with TTLs, write-through and invalidation.

Every lookup counts in ``cache_requests_total{cache, result=hit|miss|error}`` and sets
``cache.hit`` on the current span. A cache-aside cache is optional by definition: when Redis
fails (down, timeout), a lookup counts ``result="error"`` and behaves as a miss, a store is
skipped, a warning is logged, and the cache is bypassed for ``retry_after`` seconds (lookups in
that window count as errors without touching Redis, so requests do not each pay redis-py's
connection retries), so the service keeps serving from its source of truth. Invalidations still
raise: a silently skipped one would serve stale values once Redis is back. Values are JSON by
default (pass ``dumps``/``loads`` for another format). Pattern invalidation walks the keyspace
with ``SCAN`` and deletes in batches with ``UNLINK``: ``KEYS`` would block Redis for the whole keyspace.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from .metrics import get_metrics

__all__ = ["AsyncCache", "Cache"]

T = TypeVar("T")
Client = TypeVar("Client")

logger = logging.getLogger("stackwatch.instrumentation.cache")
# What a failing Redis raises: redis-py's errors, and socket errors from a connection pool's own I/O.
CACHE_ERRORS = (RedisError, OSError)


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
        retry_after: float = 5.0,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl: expected a positive number of seconds, got {ttl!r}")
        if retry_after < 0:
            raise ValueError(f"retry_after: expected a number of seconds >= 0, got {retry_after!r}")
        self.retry_after = retry_after
        self._bypass_until = 0.0
        self.client = client
        self.name = name
        self.ttl = ttl
        self.prefix = f"{name}:" if prefix is None else prefix
        self._dumps = dumps
        self._loads = loads
        counter = get_metrics(registry).cache_requests
        self._hits = counter.labels(name, "hit")
        self._misses = counter.labels(name, "miss")
        self._errors = counter.labels(name, "error")

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

    def _bypassed(self) -> bool:
        """True while a recent Redis failure has the cache bypassed."""
        return self._bypass_until > 0.0 and time.monotonic() < self._bypass_until

    def _failed(self, action: str, error: BaseException | None) -> None:
        """Account for a Redis failure the caller survives (``error`` None: bypassed, Redis not asked)."""
        if action == "lookup":
            self._errors.inc()
            trace.get_current_span().set_attribute("cache.hit", False)
        if error is not None:
            self._bypass_until = time.monotonic() + self.retry_after
            logger.warning("cache %r: %s failed (%s); serving without the cache for %gs",
                           self.name, action, type(error).__name__, self.retry_after)


class Cache(_CacheBase[Any]):
    """Cache-aside over a synchronous ``redis.Redis`` client."""

    def _lookup(self, key: str) -> Any:
        if self._bypassed():
            self._failed("lookup", None)
            return None
        try:
            raw = self.client.get(self.key(key))
        except CACHE_ERRORS as error:
            self._failed("lookup", error)
            return None
        return raw if self._seen(raw) else None

    def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or ``default`` on a miss or when Redis fails."""
        raw = self._lookup(key)
        return default if raw is None else self._loads(raw)

    def get_or_load(self, key: str, loader: Callable[[], T], ttl: float | None = None) -> T:
        """Cache-aside: the cached value, or ``loader()`` (stored with the TTL) on a miss or when Redis fails."""
        raw = self._lookup(key)
        if raw is not None:
            return self._loads(raw)  # type: ignore[no-any-return]
        value = loader()
        self.set(key, value, ttl)
        return value

    def set(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store ``value`` with a TTL (the cache default unless given); False when Redis failed."""
        if self._bypassed():
            return False
        try:
            self.client.set(self.key(key), self._dumps(value), px=self._px(ttl))
        except CACHE_ERRORS as error:
            self._failed("store", error)
            return False
        return True

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

    async def _lookup(self, key: str) -> Any:
        if self._bypassed():
            self._failed("lookup", None)
            return None
        try:
            raw = await self.client.get(self.key(key))
        except CACHE_ERRORS as error:
            self._failed("lookup", error)
            return None
        return raw if self._seen(raw) else None

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or ``default`` on a miss or when Redis fails."""
        raw = await self._lookup(key)
        return default if raw is None else self._loads(raw)

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[T]], ttl: float | None = None) -> T:
        """Cache-aside: the cached value, or ``await loader()`` (stored with the TTL) on a miss or when Redis fails."""
        raw = await self._lookup(key)
        if raw is not None:
            return self._loads(raw)  # type: ignore[no-any-return]
        value = await loader()
        await self.set(key, value, ttl)
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store ``value`` with a TTL (the cache default unless given); False when Redis failed."""
        if self._bypassed():
            return False
        try:
            await self.client.set(self.key(key), self._dumps(value), px=self._px(ttl))
        except CACHE_ERRORS as error:
            self._failed("store", error)
            return False
        return True

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
