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

import errno
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry

from .autoinstrument import Cooperation, insert_middleware
from .cache import AsyncCache, Cache
from .config import Settings
from .db_asyncpg import instrument_asyncpg
from .db_psycopg import instrument_psycopg
from .db_sqlalchemy import instrument_sqlalchemy
from .errors import ConfigError, InstrumentationError, NPlusOneError
from .exposition import MetricsServer, exposition_registry, metrics_response
from .health import Check, Health, database_check, redis_check
from .info import instrumentation_info
from .logs import install_log_correlation
from .metrics import Metrics, get_metrics, multiprocess_active
from .middleware import ServerRequestHook, ServerResponseHook, StackwatchMiddleware
from .multiprocess import child_exit, mark_worker_dead
from .pools import instrument_pool
from .queries import allow_n_plus_one, current_queries
from .routes import routes_serve
from .sentry import SentryReporter
from .tracing import current_ids, outgoing_headers, resolve_tracer_provider

__all__ = [
    "AsyncCache",
    "Cache",
    "Check",
    "ConfigError",
    "Instrumentation",
    "InstrumentationError",
    "Metrics",
    "NPlusOneError",
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
]

logger = logging.getLogger("stackwatch.instrumentation")
_ATTR = "_stackwatch_instrumentation"
install_log_correlation()


class Instrumentation:
    """What :func:`instrument` set up for one app; owns and closes what it created.

    ``tracer_provider`` is the provider of the server spans: the injected one, else the global
    one, else (none configured) one stackwatch built from the settings and made the global one, so
    that the process has one provider and one resource. None when traces are off or
    ``OTEL_SDK_DISABLED`` is set and no provider was configured.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: Any = None,
        registry: CollectorRegistry | None = None,
        server_request_hook: ServerRequestHook | None = None,
        server_response_hook: ServerResponseHook | None = None,
        health_checks: Mapping[str, Check] | None = None,
        sentry_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.multiprocess = self._check_multiprocess(settings)
        self.metrics = get_metrics(registry) if settings.metrics else None
        self._owned_provider = None
        self.tracer_provider: Any = None
        self.tracer: trace.Tracer | None = None
        if settings.traces:
            self.tracer_provider, self._owned_provider = resolve_tracer_provider(settings, tracer_provider)
            if self.tracer_provider is not None:
                self.tracer = self.tracer_provider.get_tracer("stackwatch.instrumentation")
        self.health = Health(health_checks or {}, settings.health_timeout, self.metrics)
        self.endpoints: dict[str, Any] = {
            settings.health_path: self._health("health"),
            settings.liveness_path: self._health("live"),
            settings.readiness_path: self._health("ready"),
        }
        self._endpoint_settings = {settings.health_path: "health_path", settings.liveness_path: "liveness_path",
                                   settings.readiness_path: "readiness_path"}
        self.metrics_server: MetricsServer | None = None
        if self.metrics is not None:
            scrape_registry = exposition_registry(self.metrics.registry, self.multiprocess)
            if settings.metrics_port is None:
                self.endpoints[settings.metrics_path] = self._metrics_endpoint(scrape_registry)
                self._endpoint_settings[settings.metrics_path] = "metrics_path"
            else:
                self.metrics_server = self._metrics_server(scrape_registry)
        self.sentry = SentryReporter.create(settings, sentry_options)
        self.info = instrumentation_info(settings, self.tracer_provider, self.sentry)
        if self.metrics is not None:
            self.metrics.instrumentation_info.add(self.info)
        self.server_request_hook = server_request_hook
        self.server_response_hook = server_response_hook
        self.middleware: StackwatchMiddleware | None = None
        self.restore: tuple[bool, Any, Any] = (False, None, None)
        self.cooperation = Cooperation()

    @staticmethod
    def _check_multiprocess(settings: Settings) -> bool:
        if not settings.multiproc_dir:
            return False
        if not multiprocess_active() or os.environ.get("PROMETHEUS_MULTIPROC_DIR") != settings.multiproc_dir:
            raise ConfigError(
                f"PROMETHEUS_MULTIPROC_DIR: {settings.multiproc_dir!r} must be set in the environment before "
                "prometheus_client is imported (set it in the process manager, not in code)"
            )
        if settings.exemplars:
            message = "exemplars are off in multiprocess mode (client_python cannot aggregate them)"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            logger.warning(message)
        return True

    def _metrics_server(self, registry: CollectorRegistry) -> MetricsServer | None:
        settings = self.settings
        try:
            return MetricsServer(registry, settings.metrics_addr, settings.metrics_port)  # type: ignore[arg-type]
        except OSError as exc:
            if not self.multiprocess or exc.errno != errno.EADDRINUSE:
                raise
            # Every worker of a gunicorn/uvicorn --workers service runs this; the first one to bind
            # serves the aggregate of all workers, the others must not fail to start over it.
            logger.info("metrics port %s:%s is served by another worker", settings.metrics_addr, settings.metrics_port)
            return None

    def _health(self, kind: str) -> Any:
        async def endpoint(scope: Any, receive: Any, send: Any) -> None:
            await self.health.respond(kind, send)

        return endpoint

    @staticmethod
    def _metrics_endpoint(registry: CollectorRegistry) -> Any:
        async def endpoint(scope: Any, receive: Any, send: Any) -> None:
            await metrics_response(registry, scope, send)

        return endpoint

    def yield_to(self, routes: Any) -> None:
        """Drop the endpoints whose path one of the app's own ``routes`` serves, with a warning.

        The app's route wins: stackwatch never shadows it (its endpoint can move to another path).
        """
        for path in [p for p in self.endpoints if routes_serve(routes, p)]:
            del self.endpoints[path]
            name = self._endpoint_settings[path]
            env = Settings.env_name(name)
            message = (f"the app has its own route for {path}: stackwatch does not serve its endpoint there "
                       f"(set {name}= or {env} to serve it on another path)")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            logger.warning(message)

    def wrap(self, app: Any) -> StackwatchMiddleware:
        """``app`` inside the middleware (for any ASGI app; :func:`instrument` uses it for Starlette)."""
        self.middleware = StackwatchMiddleware(
            app,
            settings=self.settings,
            metrics=self.metrics,
            tracer=self.tracer,
            endpoints=self.endpoints,
            sentry=self.sentry,
            server_request_hook=self.server_request_hook,
            server_response_hook=self.server_response_hook,
            multiprocess=self.multiprocess,
            on_startup=self._start_health_timer,
            on_shutdown=self.health.stop_timer,
        )
        return self.middleware

    def _start_health_timer(self) -> None:
        self.health.start_timer(self.settings.health_interval)

    def close(self) -> None:
        """Stop the metrics server, flush and stop what this instrumentation created."""
        if self.metrics_server is not None:
            self.metrics_server.close()
        if self.metrics is not None:
            self.metrics.instrumentation_info.remove(self.info)
        if self._owned_provider is not None:
            # It is the process-global provider now (that cannot be undone): flush, keep it serving.
            self._owned_provider.force_flush(5000)
        if self.sentry is not None:
            self.sentry.close()
        self.health.close()


def instrument(
    app: Any,
    *,
    tracer_provider: Any = None,
    registry: CollectorRegistry | None = None,
    server_request_hook: ServerRequestHook | None = None,
    server_response_hook: ServerResponseHook | None = None,
    health_checks: Mapping[str, Check] | None = None,
    sentry_options: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Instrumentation:
    """Instrument a Starlette/FastAPI ``app``; a second call returns the first's result unchanged.

    ``overrides`` are :class:`Settings` fields (``service_name=``, ``sampler_arg=``,
    ``metrics_port=``...) and win over the environment (``environ``, default ``os.environ``).
    The middleware is added when the app builds its middleware stack (also for an app that has
    already served requests), just inside Starlette's outermost error middleware or OpenTelemetry's
    ASGI middleware when auto-instrumentation put one there.
    """
    existing = app.__dict__.get(_ATTR)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    if not hasattr(app, "build_middleware_stack"):
        raise TypeError(
            f"instrument: expected a Starlette or FastAPI app, got {type(app).__qualname__}; "
            "for another ASGI app use Instrumentation(Settings.resolve(os.environ)).wrap(app)"
        )
    settings = Settings.resolve(os.environ if environ is None else environ, **overrides)
    instrumentation = Instrumentation(
        settings,
        tracer_provider=tracer_provider,
        registry=registry,
        server_request_hook=server_request_hook,
        server_response_hook=server_response_hook,
        health_checks=health_checks,
        sentry_options=sentry_options,
    )
    had_own = "build_middleware_stack" in app.__dict__
    previous = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        stack = previous()
        if app.__dict__.get(_ATTR) is not instrumentation:  # uninstrumented under another wrapper
            return stack
        # Built on the first request, when the app's routes (and mounts) are all declared.
        instrumentation.yield_to(app.router.routes)
        if settings.traces:
            instrumentation.cooperation.apply(app)
        return insert_middleware(stack, instrumentation.wrap)

    instrumentation.restore = (had_own, previous, build_middleware_stack)
    if settings.traces:
        instrumentation.cooperation.apply(app)
    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None
    app.__dict__[_ATTR] = instrumentation
    return instrumentation


def uninstrument(app: Any) -> None:
    """Undo :func:`instrument`: the app's middleware stack is rebuilt without stackwatch."""
    instrumentation = app.__dict__.pop(_ATTR, None)
    if instrumentation is None:
        return
    had_own, previous, ours = instrumentation.restore
    if app.__dict__.get("build_middleware_stack") is ours:
        if had_own:
            app.build_middleware_stack = previous
        else:
            del app.build_middleware_stack
    # else: another instrumentation (FastAPIInstrumentor.instrument_app) wrapped ours since; ours
    # stays in its chain and passes the stack through unchanged from now on.
    instrumentation.cooperation.undo()
    app.middleware_stack = None
    instrumentation.close()

