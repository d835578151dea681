"""SQLAlchemy statement instrumentation through the engine's cursor-execute events.

Works for any dialect and driver (``db_system_name`` is the dialect name); for an ``AsyncEngine``
the events go on its ``sync_engine``. The statement recorded is the one sent to the driver, with
placeholders, never the bound values. ``uninstrument_sqlalchemy`` removes the listeners.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry

from .errors import NPlusOneError
from .metrics import get_metrics
from .queries import record_query

__all__ = ["instrument_sqlalchemy", "uninstrument_sqlalchemy"]


def instrument_sqlalchemy(engine: Any, registry: CollectorRegistry | None = None) -> Any:
    """Record every statement executed through ``engine`` (sync or async); idempotent; returns it."""
    from sqlalchemy import event

    sync_engine = getattr(engine, "sync_engine", engine)
    if getattr(sync_engine, "_stackwatch_sqlalchemy", False):
        return engine
    metrics = get_metrics(registry)
    system = sync_engine.dialect.name

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        context._stackwatch_started = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        started = getattr(context, "_stackwatch_started", None)
        if started is not None:
            record_query(metrics, system, statement, time.perf_counter() - started)

    def failed(exception_context: Any) -> None:
        if isinstance(exception_context.original_exception, NPlusOneError):
            return  # strict mode raised from after_cursor_execute: the statement is already counted
        context = exception_context.execution_context
        started = getattr(context, "_stackwatch_started", None)
        if started is not None and exception_context.statement:
            record_query(metrics, system, exception_context.statement, time.perf_counter() - started)

    listeners = (("before_cursor_execute", before), ("after_cursor_execute", after), ("handle_error", failed))
    for name, listener in listeners:
        event.listen(sync_engine, name, listener)
    sync_engine._stackwatch_sqlalchemy = listeners
    return engine


def uninstrument_sqlalchemy(engine: Any) -> Any:
    """Undo :func:`instrument_sqlalchemy`: statements through ``engine`` are no longer recorded;
    harmless on an engine that is not instrumented; returns it."""
    from sqlalchemy import event

    sync_engine = getattr(engine, "sync_engine", engine)
    for name, listener in vars(sync_engine).pop("_stackwatch_sqlalchemy", ()):
        event.remove(sync_engine, name, listener)
    return engine
