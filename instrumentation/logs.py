"""Trace correlation for logs: every ``LogRecord`` has ``trace_id``, ``span_id`` and ``trace_sampled``.

Done with a log record factory, installed once when :mod:`stackwatch.instrumentation` is imported
and never removed, so records of every logger and handler carry the attributes, also those
created before :func:`~stackwatch.instrumentation.instrument`, after
:func:`~stackwatch.instrumentation.uninstrument` or in a process manager that only imports
``child_exit``: a ``%(trace_id)s`` format never fails. Outside a valid span the ids are zeros and
``trace_sampled`` is False. A factory installed later on top of this one keeps it working as long
as it calls the factory it replaced (as ``logging`` documents).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

__all__ = ["INVALID_SPAN_ID", "INVALID_TRACE_ID", "install_log_correlation"]

INVALID_TRACE_ID = "0" * 32
INVALID_SPAN_ID = "0" * 16
_previous: Any = None


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _previous(*args, **kwargs)
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        record.trace_id = format(ctx.trace_id, "032x")
        record.span_id = format(ctx.span_id, "016x")
        record.trace_sampled = ctx.trace_flags.sampled
    else:
        record.trace_id = INVALID_TRACE_ID
        record.span_id = INVALID_SPAN_ID
        record.trace_sampled = False
    return record


def install_log_correlation() -> None:
    """Put the correlating factory over the current one, once per process."""
    global _previous
    if _previous is None:
        _previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_factory)
