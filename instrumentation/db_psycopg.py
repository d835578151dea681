"""psycopg 3 statement instrumentation (sync and async) through a cursor-factory subclass.

psycopg has no execution hooks, but every ``execute`` -- ``conn.execute`` included -- goes through
the connection's ``cursor_factory``. ``instrument_psycopg`` swaps that factory for a subclass of
the current one that times ``execute``/``executemany`` and records them; for a ``psycopg_pool``
pool, each connection is switched when it is checked out.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from prometheus_client import CollectorRegistry

from .metrics import Metrics, get_metrics
from .queries import record_query

__all__ = ["instrument_psycopg"]

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
        cls = _classes[key] = type(base.__name__, (mixin, base), {"_stackwatch_metrics": metrics})
    return cls


def _instrument_connection(conn: Any, metrics: Metrics) -> Any:
    conn.cursor_factory = _timed_cursor_class(conn.cursor_factory, metrics)
    return conn


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
    if getattr(target, "_stackwatch_psycopg", False):
        return target
    getconn = target.getconn
    if inspect.iscoroutinefunction(getconn):

        async def getconn_async(*args: Any, **kwargs: Any) -> Any:
            return _instrument_connection(await getconn(*args, **kwargs), metrics)

        target.getconn = getconn_async
    else:

        def getconn_sync(*args: Any, **kwargs: Any) -> Any:
            return _instrument_connection(getconn(*args, **kwargs), metrics)

        target.getconn = getconn_sync
    target._stackwatch_psycopg = True
    return target
