"""psycopg 3 statement instrumentation (sync and async) through a cursor-factory subclass.

psycopg has no execution hooks, but every ``execute`` -- ``conn.execute`` included -- goes through
the connection's ``cursor_factory``. ``instrument_psycopg`` swaps that factory for a subclass of
the current one that times ``execute``/``executemany`` and records them; for a ``psycopg_pool``
pool, each connection is switched when it is checked out. ``uninstrument_psycopg`` puts the
original factory back (on every connection the pool handed out too) and the pool's own ``getconn``.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from .metrics import Metrics, get_metrics
from .patching import wrap_method
from .queries import record_query

__all__ = ["instrument_psycopg", "uninstrument_psycopg"]

_SYSTEM = "postgresql"
_classes: dict[tuple[type, int], type] = {}


def _text(cursor: Any, query: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    return str(query.as_string(cursor.connection))


class _SyncTiming:
    _stackwatch_metrics: Metrics
    _stackwatch_base: type  # the cursor factory it extends, put back by uninstrument_psycopg

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().execute(query, *args, **kwargs)  # type: ignore[misc]
        finally:
            record_query(self._stackwatch_metrics, _SYSTEM, _text(self, query), time.perf_counter() - started)

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().executemany(query, *args, **kwargs)  # type: ignore[misc]
        finally:
            record_query(self._stackwatch_metrics, _SYSTEM, _text(self, query), time.perf_counter() - started)


class _AsyncTiming:
    _stackwatch_metrics: Metrics
    _stackwatch_base: type

    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute(query, *args, **kwargs)  # type: ignore[misc]
        finally:
            record_query(self._stackwatch_metrics, _SYSTEM, _text(self, query), time.perf_counter() - started)

    async def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().executemany(query, *args, **kwargs)  # type: ignore[misc]
        finally:
            record_query(self._stackwatch_metrics, _SYSTEM, _text(self, query), time.perf_counter() - started)


def _timed_cursor_class(base: type, metrics: Metrics) -> type:
    if issubclass(base, (_SyncTiming, _AsyncTiming)):
        return base
    key = (base, id(metrics))
    cls = _classes.get(key)
    if cls is None:
        mixin = _AsyncTiming if inspect.iscoroutinefunction(getattr(base, "execute", None)) else _SyncTiming
        cls = _classes[key] = type(base.__name__, (mixin, base), {"_stackwatch_metrics": metrics,
                                                                   "_stackwatch_base": base})
    return cls


def _instrument_connection(conn: Any, metrics: Metrics) -> Any:
    conn.cursor_factory = _timed_cursor_class(conn.cursor_factory, metrics)
    return conn


def _uninstrument_connection(conn: Any) -> None:
    timed = conn.cursor_factory
    if issubclass(timed, (_SyncTiming, _AsyncTiming)):
        conn.cursor_factory = timed._stackwatch_base


@dataclass
class _PoolPatch:
    """What ``instrument_psycopg`` changed on a pool: its ``getconn``, and the connections it switched."""

    undo_getconn: Callable[[], None]
    connections: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)


def instrument_psycopg(target: Any, registry: CollectorRegistry | None = None) -> Any:
    """Record every statement of ``target`` (a psycopg connection or psycopg_pool pool); returns it.

    Durations go to ``db_client_operation_duration_seconds``; inside an instrumented request the
    statements also count toward queries-per-request and N+1 detection.
    """
    metrics = get_metrics(registry)
    if hasattr(target, "cursor_factory"):
        return _instrument_connection(target, metrics)
    if not hasattr(target, "getconn"):
        raise TypeError(f"instrument_psycopg: expected a psycopg connection or pool, got {type(target).__qualname__}")
    if isinstance(getattr(target, "_stackwatch_psycopg", None), _PoolPatch):
        return target
    switched: weakref.WeakSet[Any] = weakref.WeakSet()

    def switch(conn: Any) -> Any:
        switched.add(conn)
        return _instrument_connection(conn, metrics)

    def wrap(getconn: Any) -> Any:
        if inspect.iscoroutinefunction(getconn):

            async def getconn_async(*args: Any, **kwargs: Any) -> Any:
                return switch(await getconn(*args, **kwargs))

            return getconn_async

        def getconn_sync(*args: Any, **kwargs: Any) -> Any:
            return switch(getconn(*args, **kwargs))

        return getconn_sync

    target._stackwatch_psycopg = _PoolPatch(wrap_method(target, "getconn", wrap), switched)
    return target


def uninstrument_psycopg(target: Any) -> Any:
    """Undo :func:`instrument_psycopg`: ``target``'s statements are no longer recorded; returns it.

    Harmless on a connection or pool that is not instrumented.
    """
    if hasattr(target, "cursor_factory"):
        _uninstrument_connection(target)
        return target
    patch = vars(target).pop("_stackwatch_psycopg", None)
    if isinstance(patch, _PoolPatch):
        patch.undo_getconn()
        for conn in list(patch.connections):
            _uninstrument_connection(conn)
    return target
