"""asyncpg statement instrumentation through asyncpg's query loggers.

asyncpg reports each statement with its elapsed time to the loggers of its connection
(``Connection.add_query_logger``). For a pool, the logger is added to each connection when it
is acquired (also to the connections the pool opens after it was instrumented), and the reset
statement the pool sends on each release is left out (it is not the request's). asyncpg runs
loggers on the next event-loop iteration (in the request's context); the middleware yields once
at the end of each request when asyncpg is instrumented, so the last statements still count.
Strict N+1 mode cannot raise into the query there: with asyncpg it logs.
``uninstrument_asyncpg`` removes the loggers and gives the pool its own setup hook back.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from .errors import NPlusOneError
from .metrics import Metrics, get_metrics
from .queries import DeferredSources, record_query

__all__ = ["instrument_asyncpg", "uninstrument_asyncpg"]

logger = logging.getLogger("stackwatch.instrumentation")
_loggers: dict[int, Any] = {}
# What pools send on every release (Connection.get_reset_query): the pool's housekeeping, not a
# statement of the request, so it must count neither per request nor toward N+1.
_reset_queries: set[str] = set()


def _pooled(con: Any, log: Any) -> None:
    con.add_query_logger(log)
    _reset_queries.add(con.get_reset_query())


def _query_logger(metrics: Metrics) -> Any:
    found = _loggers.get(id(metrics))
    if found is None:

        def log(record: Any) -> None:
            if record.query in _reset_queries:
                return
            try:
                record_query(metrics, "postgresql", record.query, record.elapsed)
            except NPlusOneError as exc:
                logger.error("%s", exc)

        found = _loggers[id(metrics)] = log
    return found


def instrument_asyncpg(target: Any, registry: CollectorRegistry | None = None) -> Any:
    """Record every statement of ``target`` (an asyncpg Connection or Pool); returns it."""
    log = _query_logger(get_metrics(registry))
    DeferredSources.present = True
    if hasattr(target, "add_query_logger"):
        target.add_query_logger(log)
        return target
    if not hasattr(target, "_acquire"):
        raise TypeError(f"instrument_asyncpg: expected an asyncpg Connection or Pool, got {type(target).__qualname__}")
    original_setup = target._setup

    async def setup(proxy: Any) -> None:
        _pooled(proxy._con, log)
        if original_setup is not None:
            await original_setup(proxy)

    setup._stackwatch_original = original_setup  # type: ignore[attr-defined]

    # Each connection holder keeps its own copy of the pool's setup hook (taken when the pool was
    # initialized) and runs it on every acquire: connections the pool opens later, or reopens,
    # get the logger there.
    target._setup = setup
    for holder in getattr(target, "_holders", ()):
        holder._setup = setup
        if holder._con is not None:
            _pooled(holder._con, log)
    return target


def _unlog(con: Any) -> None:
    for log in _loggers.values():
        con.remove_query_logger(log)  # a set discard: harmless for a logger it does not have


def uninstrument_asyncpg(target: Any) -> Any:
    """Undo :func:`instrument_asyncpg`: ``target``'s statements are no longer recorded; returns it.

    Harmless on a connection or pool that is not instrumented.
    """
    if hasattr(target, "add_query_logger"):
        _unlog(target)
        return target
    setup: Any = getattr(target, "_setup", None)
    if not hasattr(setup, "_stackwatch_original"):
        return target
    while hasattr(setup, "_stackwatch_original"):  # instrumented more than once (for several registries)
        setup = setup._stackwatch_original
    target._setup = setup
    for holder in getattr(target, "_holders", ()):
        holder._setup = target._setup
        if holder._con is not None:
            _unlog(holder._con)
    return target
