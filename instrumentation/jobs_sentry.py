"""Sentry for background jobs: each run in its own scope, its events carrying the run's trace id.

Only when the worker process has an active Sentry client (``sentry_sdk.init`` by the team, or by
:func:`~stackwatch.instrumentation.instrument` in the same process): ``sentry_sdk`` is never
imported or initialised here. Each run gets a fresh isolation scope (no breadcrumbs of other
jobs), tagged with the job system, queue and task, named by the task, and carrying the
OpenTelemetry trace id (tag ``otel.trace_id`` and ``contexts.trace``), so the event of a failed
job leads to the trace of the request that enqueued it. A failure is captured here unless the
client runs Sentry's own integration for that library (``celery``, ``rq``, ``dramatiq``,
``arq``), which reports it itself: no duplicate events.
"""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry import trace

from .tracing import span_ids

__all__ = ["SentryJob"]


class SentryJob:
    """The Sentry side of one job run: its isolation scope, and the failure report."""

    __slots__ = ("_capture", "_isolation", "_scope")

    def __init__(self, sdk: Any, client: Any, system: str, queue: str, task: str, span: trace.Span) -> None:
        self._capture = system not in client.integrations
        self._isolation = sdk.isolation_scope()
        scope = self._scope = self._isolation.__enter__()
        scope.clear_breadcrumbs()
        scope.set_transaction_name(task, source="task")
        scope.set_tag("messaging.system", system)
        scope.set_tag("messaging.destination.name", queue)
        scope.set_tag("job.task", task)
        ids = span_ids(span)
        if ids is not None:
            scope.set_tag("otel.trace_id", ids[0])
            scope.set_context("trace", {"trace_id": ids[0], "span_id": ids[1], "op": "queue.process"})

    @classmethod
    def begin(cls, system: str, queue: str, task: str, span: trace.Span) -> SentryJob | None:
        """A scope for this run when a Sentry client is active, else None (and nothing imported)."""
        sdk = sys.modules.get("sentry_sdk")
        client = None if sdk is None else sdk.get_client()
        if client is None or not client.is_active():
            return None
        return cls(sdk, client, system, queue, task, span)

    def end(self, failed: bool, error: BaseException | None) -> None:
        """Report a failure (when no library integration does), leave the scope."""
        try:
            if failed and error is not None and self._capture:
                self._scope.capture_exception(error)
        finally:
            self._isolation.__exit__(None, None, None)
