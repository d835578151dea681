"""Drop-in observability for FastAPI / Starlette services.

Two lines::

    from stackwatch.instrumentation import instrument
    instrument(app)          # idempotent; uninstrument(app) undoes it

give the app:

* one OpenTelemetry server span per request, from the global tracer provider like the
  OpenTelemetry instrumentors (one is built from the ``OTEL_*`` settings and made global only when
  none is configured: parent-based ratio sampler, batch OTLP/HTTP export when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set); under ``opentelemetry-instrument`` or
  ``FastAPIInstrumentor`` the span OpenTelemetry started is used instead of a second one;
* RED metrics with the OpenTelemetry names: ``http_server_request_duration_seconds``
  (``http_request_method``, ``http_route`` -- the matched template, ``UNMATCHED`` when none --,
  ``http_response_status_code``) with exemplars of sampled traces, and
  ``http_server_active_requests``;
* ``/metrics`` (OpenMetrics when the scraper asks for it) or a separate port
  (``metrics_port``); multiprocess mode through ``PROMETHEUS_MULTIPROC_DIR`` and
  :func:`child_exit`;
* ``/health``, ``/health/live``, ``/health/ready`` with bounded dependency checks
  (``health_checks={"database": database_check(pool), "redis": redis_check(client)}``), also run
  every ``health_interval`` seconds in the background so ``health_check_status`` stays fresh;
* Sentry events for unhandled errors and 5xx responses when ``SENTRY_DSN`` is set (a Sentry
  client the service initialised itself is used as it is), one isolation scope per request;
* statement timing, queries per request and N+1 detection (meant repeats excepted with
  ``n_plus_one_allow=``, :func:`allow_n_plus_one` or ``n_plus_one_min_duration=``) once the
  database handles are instrumented: :func:`instrument_psycopg`, :func:`instrument_sqlalchemy`,
  :func:`instrument_asyncpg`; pool signals with :func:`instrument_pool`; a cache-aside helper,
  :class:`Cache` / :class:`AsyncCache`;
* ``trace_id`` / ``span_id`` on every log record (from import on, so ``%(trace_id)s`` always works).

Settings come from the standard environment variables and can be overridden by keyword arguments
of :func:`instrument` (see :class:`Settings` and docs/instrumentation.md). The tracer provider,
the Prometheus registry, hooks for custom span attributes (``server_request_hook(span, scope)``,
``server_response_hook(span, scope, message)``) and Sentry options are injectable; headers are
captured on the span by allowlist (OpenTelemetry's ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``).
"""

from __future__ import annotations

from .app import Instrumentation, InstrumentOptions, instrument, uninstrument
from .asgi import ASGIApp, Receive, Scope, Send
from .cache import AsyncCache, Cache
from .config import Settings
from .db_asyncpg import instrument_asyncpg, uninstrument_asyncpg
from .db_psycopg import instrument_psycopg, uninstrument_psycopg
from .db_sqlalchemy import instrument_sqlalchemy, uninstrument_sqlalchemy
from .errors import ConfigError, InstrumentationError, NPlusOneError
from .health import Check, database_check, redis_check
from .metrics import Metrics, get_metrics
from .middleware import ServerRequestHook, ServerResponseHook, StackwatchMiddleware
from .multiprocess import child_exit, mark_worker_dead
from .pools import instrument_pool, uninstrument_pool
from .queries import allow_n_plus_one, current_queries
from .tracing import current_ids, outgoing_headers

__all__ = [
    "ASGIApp",
    "AsyncCache",
    "Cache",
    "Check",
    "ConfigError",
    "InstrumentOptions",
    "Instrumentation",
    "InstrumentationError",
    "Metrics",
    "NPlusOneError",
    "Receive",
    "Scope",
    "Send",
    "ServerRequestHook",
    "ServerResponseHook",
    "Settings",
    "StackwatchMiddleware",
    "allow_n_plus_one",
    "child_exit",
    "current_ids",
    "current_queries",
    "database_check",
    "get_metrics",
    "instrument",
    "instrument_asyncpg",
    "instrument_pool",
    "instrument_psycopg",
    "instrument_sqlalchemy",
    "mark_worker_dead",
    "outgoing_headers",
    "redis_check",
    "uninstrument",
    "uninstrument_asyncpg",
    "uninstrument_pool",
    "uninstrument_psycopg",
    "uninstrument_sqlalchemy",
]
