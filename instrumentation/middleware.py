"""The pure-ASGI middleware: one server span, RED metrics, N+1 bookkeeping, errors, endpoints.

It sits just inside Starlette's outermost ``ServerErrorMiddleware`` (and inside OpenTelemetry's
ASGI middleware when auto-instrumentation added one), around every user middleware, so an
unhandled exception reaches it (counted as the 500 the client gets) and it sees the route that the
router matched. When a server span is already current (OpenTelemetry's middleware started it),
that span is the request's span: stackwatch names it by the route template and adds its
attributes instead of starting a second one. ``/metrics`` and the health paths are answered here
before routing and are neither traced nor counted, nor are excluded URLs. A WebSocket connection
gets one server span and its own metrics; lifespan scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .cache_control import CacheControlCounter
from .config import Settings
from .headers import HeaderCapture
from .metrics import Metrics, gauge_adder, observe
from .queries import DeferredSources, NPlusOnePolicy, RequestQueries, request_queries
from .routes import UNMATCHED, RouteTemplates, route_path
from .sentry import SentryReporter
from .tracing import extract_context

__all__ = ["ServerRequestHook", "ServerResponseHook", "StackwatchMiddleware"]

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Endpoint = Callable[[Any, Any, Any], Awaitable[None]]
ServerRequestHook = Callable[[trace.Span, dict[str, Any]], None]
"""``hook(span, scope)``: called with the server span and the ASGI scope when a request starts."""
ServerResponseHook = Callable[[trace.Span, dict[str, Any], dict[str, Any] | None], None]
"""``hook(span, scope, message)``: called before the span ends with the ``http.response.start``
message (status and headers), None when no response was started."""

logger = logging.getLogger("stackwatch.instrumentation")

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"))
_SERVER = SpanKind.SERVER
_ERROR = Status(StatusCode.ERROR)


class StackwatchMiddleware:
    """Wraps an ASGI app; build it through :func:`stackwatch.instrumentation.instrument`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        metrics: Metrics | None,
        tracer: trace.Tracer | None,
        endpoints: dict[str, Endpoint],
        sentry: SentryReporter | None = None,
        server_request_hook: ServerRequestHook | None = None,
        server_response_hook: ServerResponseHook | None = None,
        multiprocess: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer
        self.endpoints = endpoints
        self.sentry = sentry
        self.request_hook = server_request_hook
        self.response_hook = server_response_hook
        headers = HeaderCapture(settings.capture_request_headers, settings.capture_response_headers,
                                settings.capture_headers_sanitize)
        self.headers = headers if headers.enabled else None
        self.exemplars = settings.exemplars and not multiprocess
        self.multiprocess = multiprocess
        self.n_plus_one = NPlusOnePolicy(
            settings.n_plus_one_threshold,
            settings.n_plus_one_strict,
            settings.n_plus_one_allow,
            settings.n_plus_one_min_duration,
        )
        excluded = settings.excluded_urls
        self.excluded = re.compile("|".join(f"(?:{p})" for p in excluded)) if excluded else None
        self.templates = RouteTemplates()
        self.cache_control = CacheControlCounter(metrics.cache_control) if metrics is not None else None
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._queries: dict[str, Any] = {}
        self._active: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: C901 - to split (issue 11)
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket" and (self.excluded is None or not self.excluded.search(scope["path"])):
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        endpoint = self.endpoints.get(route_path(scope)) if self.endpoints else None
        if endpoint is not None:
            await endpoint(scope, receive, send)
            return
        if self.excluded is not None and self.excluded.search(scope["path"]):
            await self.app(scope, receive, send)
            return

        method = scope["method"]
        if method not in _METHODS:
            method = "_OTHER"
        metrics = self.metrics
        active = None
        if metrics is not None:
            active = self._active.get(method)
            if active is None:
                active = self._active[method] = gauge_adder(metrics.http_active.labels(method))
            active(1)

        span = None
        span_token = None
        owned = True
        if self.tracer is not None:
            span, span_token, owned = self._start_span(self.tracer, scope, method)
            if self.request_hook is not None:
                _call_hook(self.request_hook, span, scope)

        queries = RequestQueries(self.n_plus_one)
        queries_token = request_queries.set(queries)
        entry_route = scope.get("route")
        entry_root = scope.get("root_path", "")
        status = 500
        response_start: Any = None
        annotate = span is not None  # the span still needs its attributes (and, if owned, its end)
        sent = 0.0
        received = 0
        sent_bytes = 0

        async def receive_counted() -> Any:
            nonlocal received
            message = await receive()
            body = message.get("body")
            if body:
                received += len(body)
            return message

        async def send_status(message: Any) -> None:
            nonlocal status, sent, sent_bytes, response_start, annotate
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body")
                if body:
                    sent_bytes += len(body)
                if not message.get("more_body", False):
                    await send(message)
                    sent = time.perf_counter()  # the response is complete; background tasks run after
                    return
            elif kind == "http.response.start":
                status = message["status"]
                response_start = message
                if annotate and not owned:  # OpenTelemetry ends its span once the response is sent
                    annotate = False
                    route = self.templates.template(scope, entry_route, entry_root)
                    self._end_span(span, scope, method, route, status, None, response_start, owned)
            await send(message)

        sentry_request = None
        if self.sentry is not None:
            sentry_request = self.sentry.begin(
                scope, span, lambda: self.templates.template(scope, entry_route, entry_root))

        started = time.perf_counter()
        error: BaseException | None = None
        try:
            await self.app(scope, receive_counted, send_status)
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = (sent or time.perf_counter()) - started
            if DeferredSources.present:
                await asyncio.sleep(0)  # let asyncpg's pending query loggers run first
            request_queries.reset(queries_token)
            route = self.templates.template(scope, entry_route, entry_root)
            if metrics is not None:
                active(-1)  # type: ignore[misc]
                self._observe(metrics, method, route, status, elapsed, span, queries, received, sent_bytes)
            if self.cache_control is not None:
                self.cache_control.count(route, response_start)
            if annotate:
                self._end_span(span, scope, method, route, status, error, response_start, owned)
            if sentry_request is not None:
                sentry_request.end(error, status, method, route)
            if span_token is not None:
                otel_context.detach(span_token)

    @staticmethod
    def _start_span(tracer: trace.Tracer, scope: Any, name: str) -> tuple[Any, Any, bool]:
        """``(span, context token, owned)``: the server span OpenTelemetry's ASGI middleware already
        started (not owned, no token), else a new one, child of the incoming trace context, made current."""
        current = trace.get_current_span()
        if current.is_recording() and getattr(current, "kind", None) is _SERVER:
            return current, None, False
        parent = extract_context(scope.get("headers", ()))
        span = tracer.start_span(name, parent, _SERVER)
        return span, otel_context.attach(trace.set_span_in_context(span, parent)), True

    def _observe(
        self,
        metrics: Metrics,
        method: str,
        route: str,
        status: int,
        elapsed: float,
        span: Any,
        queries: RequestQueries,
        received: int,
        sent: int,
    ) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._children[key] = (
                metrics.http_duration.labels(*labels),
                metrics.http_request_size.labels(*labels),
                metrics.http_response_size.labels(*labels),
            )
        duration, request_size, response_size = children
        observe(request_size, received)
        observe(response_size, sent)
        exemplar = None
        if span is not None and self.exemplars:
            ctx = span.get_span_context()
            if ctx.trace_flags.sampled:
                exemplar = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
        observe(duration, elapsed, exemplar)
        per_request = self._queries.get(route)
        if per_request is None:
            per_request = self._queries[route] = metrics.queries_per_request.labels(route)
        observe(per_request, queries.count)
        if queries.flagged:
            metrics.n_plus_one.labels(route).inc(len(queries.flagged))
        if self.multiprocess:
            metrics.refresh_pools_if_due()

    def _end_span(self, span: Any, scope: Any, method: str, route: str, status: int, error: BaseException | None,
                  response_start: Any, owned: bool) -> None:
        # All attributes in one call when the span ends: the SDK validates each attribute value, and
        # start-time attributes are validated twice (for the sampler, then for the span).
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "http.response.status_code": status,
        }
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        if route != UNMATCHED:
            span.update_name(f"{method} {route}")
            attributes["http.route"] = route
        if error is not None:
            if owned:  # an adopted span's owner records the exception itself
                span.record_exception(error)
            attributes["error.type"] = type(error).__qualname__
            span.set_status(_ERROR)
        elif status >= 500:
            attributes["error.type"] = str(status)
            span.set_status(_ERROR)
        if self.headers is not None:
            attributes.update(self.headers.request(scope.get("headers", ())))
            if response_start is not None:
                attributes.update(self.headers.response(response_start.get("headers", ())))
        span.set_attributes(attributes)
        if self.response_hook is not None:
            _call_hook(self.response_hook, span, scope, response_start)
        if owned:
            span.end()


    async def _websocket(self, scope: Any, receive: Any, send: Any) -> None:
        """One server span per connection, its duration by route and the open connections."""
        metrics = self.metrics
        if metrics is not None:
            metrics.websocket_active.inc()
        span = None
        span_token = None
        owned = True
        if self.tracer is not None:
            span, span_token, owned = self._start_span(self.tracer, scope, "WEBSOCKET")
        entry_route = scope.get("route")
        entry_root = scope.get("root_path", "")
        close_code = None

        async def send_close(message: Any) -> None:
            nonlocal close_code
            if message["type"] == "websocket.close":
                close_code = message.get("code", 1000)
            await send(message)

        started = time.perf_counter()
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_close)
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = self.templates.template(scope, entry_route, entry_root)
            if metrics is not None:
                metrics.websocket_active.dec()
                metrics.websocket_duration.labels(route).observe(elapsed)
            if span is not None:
                attributes: dict[str, Any] = {"url.path": scope["path"], "url.scheme": scope.get("scheme", "ws")}
                client = scope.get("client")
                if client:
                    attributes["client.address"] = client[0]
                if route != UNMATCHED:
                    span.update_name(f"WEBSOCKET {route}")
                    attributes["http.route"] = route
                if close_code is not None:
                    attributes["websocket.close.code"] = close_code
                if error is not None:
                    if owned:  # an adopted span's owner records the exception itself
                        span.record_exception(error)
                    attributes["error.type"] = type(error).__qualname__
                    span.set_status(_ERROR)
                span.set_attributes(attributes)
                if owned:
                    span.end()
            if span_token is not None:
                otel_context.detach(span_token)


def _call_hook(hook: Callable[..., None], *args: Any) -> None:
    """Run a user hook; its failure is logged, never turned into a failed request."""
    try:
        hook(*args)
    except Exception:
        logger.exception("stackwatch hook %r failed", getattr(hook, "__qualname__", hook))
