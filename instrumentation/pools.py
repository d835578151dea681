"""Connection-pool signals for psycopg_pool, SQLAlchemy, asyncpg and redis-py pools.

``instrument_pool(pool)`` wraps the pool's acquire method on the instance (timing the wait and
counting pending requests) and registers a reader of the pool's own idle/used/max figures. The
pool's configuration (min/max size, idle and connect timeouts) is exported once as
``db_client_connection_pool_info``, so ``stackwatch check`` can compare it with the checklist's
guidance (max 20-30 per instance, idle timeout ~30 s, connect timeout ~2 s). For
psycopg_pool, whose size also counts connections being opened or re-opened, the release method
is wrapped too and "used" is what clients hold, so a pool reconnecting to a database that is
down does not look saturated. The
gauges are refreshed when the registry is collected (and, in multiprocess mode, at most once a
second at the end of a request, since a scrape only reaches one worker). ``uninstrument_pool(pool)``
gives the pool its own methods back and removes its gauges.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from .metrics import Metrics, get_metrics
from .patching import wrap_method

__all__ = ["PoolWatch", "instrument_pool", "uninstrument_pool"]

Stats = Callable[[Any], "tuple[int, int, int]"]  # pool -> (idle, used, max)


@dataclass(frozen=True)
class PoolSettings:
    """What a pool was configured with; None where its library has no such setting."""

    min: float | None = None
    max: float | None = None
    idle_timeout: float | None = None
    connect_timeout: float | None = None

    def labels(self) -> list[str]:
        return ["" if v is None else f"{v:g}" for v in (self.min, self.max, self.idle_timeout, self.connect_timeout)]


Settings = Callable[[Any], PoolSettings]


class PoolWatch:
    """One watched pool: wait-time wrapper, pending counter and a stats reader."""

    def __init__(self, metrics: Metrics, name: str, pool: Any, stats: Stats, settings: Settings) -> None:
        self.name = name
        self.pending = 0
        self.held: int | None = None  # connections clients hold, when the release method is wrapped
        self._lock = threading.Lock()
        try:
            self._pool: Callable[[], Any] = weakref.ref(pool)
        except TypeError:  # asyncpg pools have __slots__ without __weakref__: they live as long as we do
            self._pool = lambda: pool
        self._stats = stats
        self.metrics = metrics
        self._wait = metrics.pool_wait.labels(name)
        self._gauges = (
            metrics.pool_connections.labels(name, "idle"),
            metrics.pool_connections.labels(name, "used"),
            metrics.pool_max.labels(name),
            metrics.pool_pending.labels(name),
        )
        self._settings = _read_settings(settings, pool).labels()
        metrics.pool_info.labels(name, *self._settings).set(1)

    def timed(self, acquire: Callable[..., Any]) -> Callable[..., Any]:
        """``acquire`` wrapped to observe the wait and count the waiters (sync or async)."""
        if inspect.iscoroutinefunction(acquire):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                self._enter()
                started = time.perf_counter()
                got = False
                try:
                    connection = await acquire(*args, **kwargs)
                    got = True
                    return connection
                finally:
                    self._leave(time.perf_counter() - started, got)

            return timed_async

        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            self._enter()
            started = time.perf_counter()
            got = False
            try:
                connection = acquire(*args, **kwargs)
                got = True
                return connection
            finally:
                self._leave(time.perf_counter() - started, got)

        return timed_sync

    def counted(self, release: Callable[..., Any]) -> Callable[..., Any]:
        """``release`` wrapped to count the connections clients hold (sync or async)."""
        self.held = 0
        if inspect.iscoroutinefunction(release):

            async def counted_async(*args: Any, **kwargs: Any) -> Any:
                self._returned()
                return await release(*args, **kwargs)

            return counted_async

        def counted_sync(*args: Any, **kwargs: Any) -> Any:
            self._returned()
            return release(*args, **kwargs)

        return counted_sync

    def _returned(self) -> None:
        with self._lock:
            self.held = max(0, (self.held or 0) - 1)

    def _enter(self) -> None:
        with self._lock:
            self.pending += 1

    def _leave(self, waited: float, got: bool) -> None:
        with self._lock:
            self.pending -= 1
            if got and self.held is not None:
                self.held += 1
        self._wait.observe(waited)

    def refresh(self) -> bool:
        """Copy the pool's figures into the gauges; False once the pool is gone."""
        pool = self._pool()
        if pool is None:
            return False
        idle, used, maximum = self._stats(pool)
        if self.held is not None:
            used = min(used, self.held)
        self._gauges[0].set(idle)
        self._gauges[1].set(used)
        self._gauges[2].set(maximum)
        self._gauges[3].set(self.pending)
        return True

    def forget(self) -> None:
        """Drop the gauges of a pool that is gone (only when no live pool reports under its name)."""
        for state in ("idle", "used"):
            self.metrics.pool_connections.remove(self.name, state)
        self.metrics.pool_max.remove(self.name)
        self.metrics.pool_pending.remove(self.name)
        self.metrics.pool_info.remove(self.name, *self._settings)


def _psycopg_stats(pool: Any) -> tuple[int, int, int]:
    stats = pool.get_stats()
    idle = stats.get("pool_available", 0)
    return idle, stats.get("pool_size", 0) - idle, pool.max_size


def _sqlalchemy_stats(pool: Any) -> tuple[int, int, int]:
    size = pool.size() if callable(getattr(pool, "size", None)) else 0
    overflow = max(getattr(pool, "_max_overflow", 0), 0)
    idle = pool.checkedin() if hasattr(pool, "checkedin") else 0
    used = pool.checkedout() if hasattr(pool, "checkedout") else 0
    return idle, used, size + overflow


def _asyncpg_stats(pool: Any) -> tuple[int, int, int]:
    idle = pool.get_idle_size()
    return idle, pool.get_size() - idle, pool.get_max_size()


def _redis_stats(pool: Any) -> tuple[int, int, int]:
    if hasattr(pool, "_get_free_connections"):
        idle = len(pool._get_free_connections())
        used = len(pool._get_in_use_connections())
    else:
        idle = len(pool._available_connections)
        used = len(pool._in_use_connections)
    return idle, used, pool.max_connections


def _read_settings(settings: Settings, pool: Any) -> PoolSettings:
    """The pool's settings, or none known when its library moved them (never fails the caller)."""
    try:
        return settings(pool)
    except Exception:  # noqa: BLE001 - private attributes of other libraries may change
        return PoolSettings()


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _psycopg_settings(pool: Any) -> PoolSettings:
    """``timeout`` is how long getconn() waits for a connection: the checklist's connection timeout."""
    return PoolSettings(pool.min_size, pool.max_size, _seconds(pool.max_idle), _seconds(pool.timeout))


def _sqlalchemy_settings(pool: Any) -> PoolSettings:
    """QueuePool closes no idle connection (``pool_recycle`` is an age limit, not an idle timeout)."""
    size = pool.size() if callable(getattr(pool, "size", None)) else None
    overflow = max(getattr(pool, "_max_overflow", 0), 0)
    maximum = None if size is None else size + overflow
    return PoolSettings(None, maximum, None, _seconds(getattr(pool, "_timeout", None)))


def _asyncpg_settings(pool: Any) -> PoolSettings:
    connect = getattr(pool, "_connect_kwargs", {}).get("timeout")
    return PoolSettings(pool._minsize, pool._maxsize, _seconds(pool._max_inactive_connection_lifetime) or None,
                        _seconds(connect))


def _redis_settings(pool: Any) -> PoolSettings:
    kwargs = getattr(pool, "connection_kwargs", {})
    return PoolSettings(None, pool.max_connections, None, _seconds(kwargs.get("socket_connect_timeout")))


_asyncpg_watches: dict[int, PoolWatch] = {}
_asyncpg_classes: dict[type, type] = {}


def _asyncpg_timed_class(cls: type) -> type:
    """A layout-compatible subclass of an asyncpg Pool class whose ``_acquire`` is timed.

    asyncpg pools use ``__slots__``, so the method cannot be replaced on the instance; the
    instance's class is switched instead (same slots, so the switch is allowed).
    """
    timed = _asyncpg_classes.get(cls)
    if timed is None:

        async def _acquire(self: Any, timeout: Any) -> Any:
            watch = _asyncpg_watches[id(self)]
            return await watch.timed(super(timed, self)._acquire)(timeout)  # type: ignore[arg-type]

        namespace = {"__slots__": (), "_acquire": _acquire, "__module__": cls.__module__}
        timed = _asyncpg_classes[cls] = type(cls.__name__, (cls,), namespace)
    return timed


def _install_method(target: Any, method: str, watch: PoolWatch) -> None:
    undo = [wrap_method(target, method, watch.timed)]
    if method == "getconn":  # psycopg_pool: count what clients hold through its release method
        undo.append(wrap_method(target, "putconn", watch.counted))
    target._stackwatch_pool_watch = watch
    target._stackwatch_pool_undo = undo  # on the pool, not the watch: the watch must not keep it alive


def _install_asyncpg(target: Any, method: str, watch: PoolWatch) -> None:
    _asyncpg_watches[id(target)] = watch
    target.__class__ = _asyncpg_timed_class(type(target))


def _uninstall(target: Any) -> None:
    if _asyncpg_watches.pop(id(target), None) is not None:
        target.__class__ = type(target).__bases__[0]  # the pool's own class, which the timed one extends
        return
    for step in vars(target).pop("_stackwatch_pool_undo"):
        step()
    del target._stackwatch_pool_watch


def _installed(target: Any) -> PoolWatch | None:
    watch = _asyncpg_watches.get(id(target)) or getattr(target, "_stackwatch_pool_watch", None)
    return watch if isinstance(watch, PoolWatch) else None


def _resolve(pool: Any) -> tuple[Any, str, str, Stats, Settings]:
    """``(pool object, acquire method name, default name, stats reader, settings reader)`` for a
    supported pool."""
    module = type(pool).__module__
    if module.startswith("psycopg_pool"):
        return pool, "getconn", getattr(pool, "name", "psycopg"), _psycopg_stats, _psycopg_settings
    if module.startswith("sqlalchemy"):
        engine = getattr(pool, "sync_engine", pool)
        target = getattr(engine, "pool", engine)
        name = getattr(getattr(engine, "url", None), "database", None) or "sqlalchemy"
        return target, "connect", name, _sqlalchemy_stats, _sqlalchemy_settings
    if module.startswith("asyncpg"):
        return pool, "_acquire", "asyncpg", _asyncpg_stats, _asyncpg_settings
    if module.startswith("redis"):
        target = getattr(pool, "connection_pool", pool)
        return target, "get_connection", "redis", _redis_stats, _redis_settings
    raise TypeError(
        f"instrument_pool: unsupported pool type {type(pool).__module__}.{type(pool).__qualname__}; "
        "expected psycopg_pool, SQLAlchemy, asyncpg or redis-py"
    )


def instrument_pool(pool: Any, name: str | None = None, registry: CollectorRegistry | None = None) -> PoolWatch:
    """Report ``db_client_connection_*`` for ``pool`` under ``pool_name=name``; idempotent per pool."""
    metrics = get_metrics(registry)
    target, acquire_name, default_name, stats, settings = _resolve(pool)
    existing = _installed(target)
    if existing is not None:
        return existing
    watch = PoolWatch(metrics, name or default_name, target, stats, settings)
    install = _install_asyncpg if acquire_name == "_acquire" else _install_method
    install(target, acquire_name, watch)
    metrics.watch_pool(watch)
    return watch


def uninstrument_pool(pool: Any) -> None:
    """Undo :func:`instrument_pool`: the pool's methods are its own again and its gauges are gone
    (unless another watched pool reports under the same name); harmless when not instrumented."""
    target = _resolve(pool)[0]
    watch = _installed(target)
    if watch is None:
        return
    _uninstall(target)
    watch.metrics.unwatch_pool(watch)
