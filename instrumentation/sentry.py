"""Sentry error tracking, initialized only when a DSN is configured.

Sentry's automatic framework integrations are turned off: they monkeypatch Starlette for every app
in the process. Instead the middleware reports unhandled exceptions and 5xx responses itself,
tagged with the OpenTelemetry trace and span ids so an error links to its trace. Without a DSN
nothing here is imported or called.
"""

from __future__ import annotations

from typing import Any

from .config import Settings

__all__ = ["SentryReporter"]


class SentryReporter:
    """Owns the Sentry client it initialized; reports request failures."""

    def __init__(self, settings: Settings, options: dict[str, Any] | None = None) -> None:
        import sentry_sdk

        self._sdk = sentry_sdk
        config: dict[str, Any] = {
            "dsn": settings.sentry_dsn,
            "environment": settings.sentry_environment,
            "release": settings.sentry_release,
            "traces_sample_rate": settings.sentry_traces_sample_rate,
            "auto_enabling_integrations": False,
        }
        config.update(options or {})
        sentry_sdk.init(**config)
        # The client init just made global; events of this app go to it even after another app
        # initializes its own, and close() closes this one only.
        self._client = sentry_sdk.get_global_scope().client

    def report(self, error: BaseException | None, status: int, method: str, route: str, ids: tuple[str, str] | None) -> None:
        """Send ``error`` (an unhandled exception) or, without one, a 5xx response as an event."""
        sdk = self._sdk
        with sdk.new_scope() as scope:
            scope.set_client(self._client)
            scope.set_tag("http.request.method", method)
            scope.set_tag("http.route", route)
            scope.set_tag("http.response.status_code", str(status))
            if ids is not None:
                trace_id, span_id = ids
                scope.set_tag("otel.trace_id", trace_id)
                scope.set_context("trace", {"trace_id": trace_id, "span_id": span_id, "op": "http.server"})
            if error is not None:
                scope.capture_exception(error)
            else:
                scope.capture_message(f"HTTP {status} {method} {route}", level="error")

    def close(self) -> None:
        """Flush pending events (bounded) and shut this reporter's client down."""
        self._client.close(timeout=2)
        scope = self._sdk.get_global_scope()
        if scope.client is self._client:
            scope.set_client(None)
