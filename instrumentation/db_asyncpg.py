"""asyncpg statement instrumentation through asyncpg's query loggers.

asyncpg reports each statement with its elapsed time to the loggers of its connection
(``Connection.add_query_logger``). For a pool, the logger is added to each connection when it
is acquired. asyncpg runs loggers on the next event-loop iteration (in the request's context);
the middleware yields once at the end of each request when asyncpg is instrumented, so the last
statements still count. Strict N+1 mode cannot raise into the query there: with asyncpg it logs.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from .errors import NPlusOneError
from .metrics import Metrics, get_metrics
from .queries import DeferredSources, record_query

__all__ = ["instrument_asyncpg"]

logger = logging.getLogger("stackwatch.instrumentation")
_loggers: dict[int, Any] = {}


def _query_logger(metrics: Metrics) -> Any:
    found = _loggers.get(id(metrics))
    if found is None:

        def log(record: Any) -> None:
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
    for holder in getattr(target, "_holders", ()):
        if holder._con is not None:
            holder._con.add_query_logger(log)
    original_setup = target._setup

    async def setup(proxy: Any) -> None:
        proxy._con.add_query_logger(log)
        if original_setup is not None:
            await original_setup(proxy)

    target._setup = setup
    return target
