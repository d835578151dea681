"""What :func:`~stackwatch.instrumentation.instrument` sets up for one app, and how it is undone.

:class:`Instrumentation` owns what it creates (metrics server, Sentry client, health timer) and
wraps any ASGI app; :func:`instrument` hooks it into a Starlette/FastAPI app's middleware stack
so it is built in once the app's routes are known. Everything a service injects instead of
stackwatch's own is one :class:`InstrumentOptions` value.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry

from .asgi import ASGIApp, Receive, Scope, Send
from .autoinstrument import Cooperation, insert_middleware
from .config import Settings
from .errors import ConfigError
from .exposition import MetricsServer, exposition_registry, metrics_response
from .health import Check, Health
from .info import instrumentation_info
from .logs import install_log_correlation
from .metrics import get_metrics, multiprocess_active
from .middleware import Endpoint, ServerRequestHook, ServerResponseHook, StackwatchMiddleware
from .routes import routes_serve
from .sentry import SentryReporter
from .tracing import resolve_tracer_provider

__all__ = ["InstrumentOptions", "Instrumentation", "instrument", "uninstrument"]

logger = logging.getLogger("stackwatch.instrumentation")
_ATTR = "_stackwatch_instrumentation"
install_log_correlation()  # trace ids on every log record from import on, instrumented or not


@dataclass(frozen=True)
class InstrumentOptions:
    """What a service injects instead of stackwatch's own; each is also a keyword of :func:`instrument`.

    ``tracer_provider`` is used as is and never shut down (default: the global one); ``registry``
    a ``prometheus_client.CollectorRegistry`` (default the global ``REGISTRY``); the hooks add span
    attributes (named as in opentelemetry-instrumentation-fastapi); ``health_checks`` maps a name to
    a check; ``sentry_options`` are extra ``sentry_sdk.init`` arguments, used only when stackwatch
    initialises Sentry.
    """

    tracer_provider: trace.TracerProvider | None = None
    registry: CollectorRegistry | None = None
    server_request_hook: ServerRequestHook | None = None
    server_response_hook: ServerResponseHook | None = None
    health_checks: Mapping[str, Check] | None = None
    sentry_options: dict[str, Any] | None = None

    @classmethod
    def split(cls, keywords: Mapping[str, Any], base: InstrumentOptions | None = None
              ) -> tuple[InstrumentOptions, dict[str, Any]]:
        """``keywords`` as (these options, over ``base``; the rest: the :class:`Settings` overrides)."""
        names = {f.name for f in dataclasses.fields(cls)}
        options = dataclasses.replace(base or cls(), **{k: v for k, v in keywords.items() if k in names})
        return options, {k: v for k, v in keywords.items() if k not in names}


class Instrumentation:
    """What :func:`instrument` set up for one app; owns and closes what it created.

    ``tracer_provider`` is the provider of the server spans: the injected one, else the global
    one, else (none configured) one stackwatch built from the settings and made the global one, so
    that the process has one provider and one resource. None when traces are off or
    ``OTEL_SDK_DISABLED`` is set and no provider was configured.
    """

    def __init__(self, settings: Settings, options: InstrumentOptions | None = None) -> None:
        options = options or InstrumentOptions()
        self.settings = settings
        self.multiprocess = self._check_multiprocess(settings)
        self.metrics = get_metrics(options.registry) if settings.metrics else None
        self._owned_provider = None
        self.tracer_provider: Any = None
        self.tracer: trace.Tracer | None = None
        if settings.traces:
            self.tracer_provider, self._owned_provider = resolve_tracer_provider(settings, options.tracer_provider)
            if self.tracer_provider is not None:
                self.tracer = self.tracer_provider.get_tracer("stackwatch.instrumentation")
        self.health = Health(options.health_checks or {}, settings.health_timeout, self.metrics)
        self.endpoints: dict[str, Endpoint] = {
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
        self.sentry = SentryReporter.create(settings, options.sentry_options)
        self.info = instrumentation_info(settings, self.tracer_provider, self.sentry)
        if self.metrics is not None:
            self.metrics.instrumentation_info.add(self.info)
        self.server_request_hook = options.server_request_hook
        self.server_response_hook = options.server_response_hook
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

    def _health(self, kind: str) -> Endpoint:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await self.health.respond(kind, send)

        return endpoint

    @staticmethod
    def _metrics_endpoint(registry: CollectorRegistry) -> Endpoint:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
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

    def wrap(self, app: ASGIApp) -> StackwatchMiddleware:
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


def instrument(app: Any, options: InstrumentOptions | None = None, *, environ: Mapping[str, str] | None = None,
               **keywords: Any) -> Instrumentation:
    """Instrument a Starlette/FastAPI ``app``; a second call returns the first's result unchanged.

    ``keywords`` are :class:`InstrumentOptions` fields (``registry=``, ``tracer_provider=``,
    ``health_checks=``...; they win over ``options``) and :class:`Settings` fields
    (``service_name=``, ``sampler_arg=``, ``metrics_port=``...; they win over the environment,
    ``environ``, default ``os.environ``).
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
    options, overrides = InstrumentOptions.split(keywords, options)
    settings = Settings.resolve(os.environ if environ is None else environ, **overrides)
    instrumentation = Instrumentation(settings, options)
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

