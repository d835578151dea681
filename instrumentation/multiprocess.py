"""Multiprocess support (gunicorn / ``uvicorn --workers``) for client_python's file-backed values.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory in the process manager's environment,
before Python starts, so every worker writes its values there; ``/metrics`` then aggregates all
workers. When a worker exits its live gauges must be dropped: call :func:`child_exit` from the
gunicorn hook of the same name (in ``gunicorn.conf.py``: ``from stackwatch.instrumentation
import child_exit``), or :func:`mark_worker_dead` with the pid from another process manager.
"""

from __future__ import annotations

from typing import Any

__all__ = ["child_exit", "mark_worker_dead"]


def mark_worker_dead(pid: int) -> None:
    """Remove the live-gauge files of worker ``pid`` (its counters and histograms are kept)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit(server, worker)`` hook."""
    mark_worker_dead(worker.pid)
