"""Trace correlation for logs: every ``LogRecord`` gets ``trace_id``, ``span_id`` and ``trace_sampled``.

Done with a record factory rather than a handler filter, so records of every logger and handler
carry the ids (use them in a format string: ``%(trace_id)s``). Installed once per process and
removed again when the last instrumented app is uninstrumented.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import trace

__all__ = ["install_log_correlation", "uninstall_log_correlation"]

_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16
_lock = threading.Lock()
_users = 0
_previous: Any = None


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _previous(*args, **kwargs)
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        record.trace_id = format(ctx.trace_id, "032x")
        record.span_id = format(ctx.span_id, "016x")
        record.trace_sampled = ctx.trace_flags.sampled
    else:
        record.trace_id = _INVALID_TRACE
        record.span_id = _INVALID_SPAN
        record.trace_sampled = False
    return record


def install_log_correlation() -> None:
    """Wrap the current log record factory (reference-counted)."""
    global _users, _previous
    with _lock:
        if _users == 0:
            current = logging.getLogRecordFactory()
            if _previous is None:
                _previous = current
                logging.setLogRecordFactory(_factory)
            elif current is _previous:  # the chain left in place by uninstall was taken down since
                logging.setLogRecordFactory(_factory)
            # else: ours is on top, or still called by the factory installed over it (see below)
        _users += 1


def uninstall_log_correlation() -> None:
    """Restore the previous record factory once no instrumented app needs it.

    When another factory was installed over stackwatch's since (it calls ours), ours stays in
    that chain, working, and is not wrapped a second time by the next install (which would
    make it call itself).
    """
    global _users, _previous
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_previous)
            _previous = None
