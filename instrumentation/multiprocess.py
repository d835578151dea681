"""Multiprocess support (gunicorn / ``uvicorn --workers``) for client_python's file-backed values.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory in the process manager's environment,
before Python starts, so every worker writes its values there; ``/metrics`` then aggregates all
workers. When a worker exits its live gauges must be dropped. Every scrape does that for workers
that no longer exist (uvicorn's supervisor tells nobody); gunicorn's ``child_exit`` hook does it
at once: ``from stackwatch.instrumentation import child_exit`` in ``gunicorn.conf.py``. Other
process managers can call :func:`mark_worker_dead` with the pid.
"""

from __future__ import annotations

from typing import Any

__all__ = ["child_exit", "mark_worker_dead"]


def mark_worker_dead(pid: int, path: str | None = None) -> None:
    """Remove the live-gauge files of worker ``pid`` (its counters and histograms are kept).

    ``path`` defaults to ``PROMETHEUS_MULTIPROC_DIR``.
    """
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit(server, worker)`` hook."""
    mark_worker_dead(worker.pid)
