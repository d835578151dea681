"""The pure-ASGI middleware: one server span, RED metrics, N+1 bookkeeping, errors, endpoints.

It sits just inside Starlette's outermost ``ServerErrorMiddleware`` (and inside OpenTelemetry's
ASGI middleware when auto-instrumentation added one), around every user middleware, so an
unhandled exception reaches it (counted as the 500 the client gets) and it sees the route that the
router matched. When a server span is already current (OpenTelemetry's middleware started it),
that span is the request's span: stackwatch names it by the route template and adds its
attributes instead of starting a second one. ``/metrics`` and the health paths are answered here
before routing and are neither traced nor counted, nor are excluded URLs. A WebSocket connection
gets one server span and its own metrics; lifespan scopes pass through, their startup and
shutdown also starting and stopping the instrumentation's background work (the health timer),
which a server run without lifespan gets on its first request instead.

The request path is the benchmarked part (``bench/instrumentation``): what depends only on the
method, route and status (label children, span name, constant attributes) is built once per
combination and reused, the span's attributes are set once when it ends, and nothing else
allocates more than the per-request :class:`_Exchange`.
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

from .asgi import ASGIApp, Receive, Scope, Send
from .config import Settings
from .event_loop import LoopWatch
from .header_counts import HeaderCounts, RouteCounts
from .headers import HeaderCapture
from .metrics import Metrics, observe, value_adder
from .queries import DeferredSources, NPlusOnePolicy, RequestQueries, request_queries
from .routes import UNMATCHED, RouteTemplates, route_path
from .sentry import SentryReporter
from .tracing import exemplar_labels, extract_context, set_valid_attributes

__all__ = ["Endpoint", "ServerRequestHook", "ServerResponseHook", "StackwatchMiddleware"]

Endpoint = ASGIApp
"""An endpoint stackwatch answers itself (``/metrics``, the health paths) before routing."""
ServerRequestHook = Callable[[trace.Span, dict[str, Any]], None]
"""``hook(span, scope)``: called with the server span and the ASGI scope when a request starts."""
ServerResponseHook = Callable[[trace.Span, dict[str, Any], dict[str, Any] | None], None]
"""``hook(span, scope, message)``: called before the span ends with the ``http.response.start``
message (status and headers), None when no response was started."""

logger = logging.getLogger("stackwatch.instrumentation")

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"))
_SERVER = SpanKind.SERVER
_ERROR = Status(StatusCode.ERROR)


class _Series:
    """What one ``(method, route, status)`` always writes: its label children, header counts' adders
    and span constants (one lookup per request finds them all)."""

    __slots__ = ("attributes", "counts", "duration", "per_request", "request_size", "response_size", "route",
                 "span_name")

    def __init__(self, metrics: Metrics | None, header_counts: HeaderCounts | None, method: str, route: str,
                 status: int) -> None:
        self.route = route
        self.counts: RouteCounts | None = header_counts.route(route) if header_counts is not None else None
        self.span_name = None if route == UNMATCHED else f"{method} {route}"
        attributes: dict[str, Any] = {"http.request.method": method, "http.response.status_code": status}
        if route != UNMATCHED:
            attributes["http.route"] = route
        if status >= 500:
            attributes["error.type"] = str(status)
        self.attributes = attributes
        if metrics is not None:
            labels = (method, route, str(status))
            self.duration = metrics.http_duration.labels(*labels)
            self.request_size = metrics.http_request_size.labels(*labels)
            self.response_size = metrics.http_response_size.labels(*labels)
            self.per_request = metrics.queries_per_request.labels(route)
            metrics.event_loop_blocked.labels(route)  # a 0 from the route's first request on, for rate()


class _Exchange:
    """One request as the middleware follows it: the state from its start to :meth:`StackwatchMiddleware._finish`.

    Wraps ``receive``/``send`` to see the body sizes, the status and the end of the response:
    ``sent_at`` is when the last body message went out, so the duration stops there and background
    tasks that run afterwards are not part of it.
    """

    __slots__ = ("_receive", "_send", "active", "entry_root", "entry_route", "method", "on_response_start",
                 "owned", "queries", "received", "response_start", "scope", "sent", "sent_at", "span", "status",
                 "watched")

    def __init__(self, scope: Any, receive: Any, send: Any, method: str) -> None:
        self.scope = scope
        self.method = method
        self.entry_route = scope.get("route")
        self.entry_root = scope.get("root_path", "")
        self._receive = receive
        self._send: Send = send
        self.status = 500
        self.response_start: Any = None
        self.sent_at = 0.0
        self.received = 0
        self.sent = 0
        self.on_response_start: Callable[[], None] | None = None
        self.active: Callable[[float], None] | None = None
        self.span: Any = None
        self.owned = True
        self.queries: RequestQueries | None = None
        self.watched: Any = None

    async def receive(self) -> Any:
        message = await self._receive()
        body = message.get("body")
        if body:
            self.received += len(body)
        return message

    def send(self, message: Any) -> Awaitable[None]:
        # A plain function returning the server's awaitable: no coroutine of its own but for the last message.
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body")
            if body:
                self.sent += len(body)
            if not message.get("more_body", False):
                return self._send_last(message)
        elif kind == "http.response.start":
            self.status = message["status"]
            self.response_start = message
            if self.on_response_start is not None:
                self.on_response_start()
        return self._send(message)

    async def _send_last(self, message: Any) -> None:
        await self._send(message)
        self.sent_at = time.perf_counter()


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
        on_startup: Callable[[], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self._started = on_startup is None
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
        self.header_counts = HeaderCounts(metrics) if metrics is not None else None
        self.loop_watch = (LoopWatch(metrics, self.templates, settings.event_loop_block_threshold)
                           if metrics is not None and settings.event_loop else None)
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._active: dict[str, Callable[[float], None]] = {}

    def _startup(self) -> None:
        self._started = True
        if self.on_startup is not None:
            self.on_startup()

    def _lifespan_receive(self, receive: Any) -> Any:
        """``receive`` of a lifespan scope, starting and stopping the background work on its events."""

        async def watched() -> Any:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._startup()
            elif message["type"] == "lifespan.shutdown":
                self._started = False
                if self.on_shutdown is not None:
                    self.on_shutdown()
            return message

        return watched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                self._startup()
            endpoint = self.endpoints.get(route_path(scope)) if self.endpoints else None
            if endpoint is not None:
                await endpoint(scope, receive, send)
            elif self.excluded is not None and self.excluded.search(scope["path"]):
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif kind == "websocket" and (self.excluded is None or not self.excluded.search(scope["path"])):
            await self._websocket(scope, receive, send)
        elif kind == "lifespan" and self.on_startup is not None:
            await self.app(scope, self._lifespan_receive(receive), send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Any, receive: Any, send: Any) -> None:
        """One request: :meth:`_begin`, the app, then :meth:`_finish` (after asyncpg's late reports)."""
        method = scope["method"]
        exchange = _Exchange(scope, receive, send, method if method in _METHODS else "_OTHER")
        span_token = self._begin(exchange)
        queries_token = request_queries.set(exchange.queries)
        sentry_request = None
        if self.sentry is not None:
            sentry_request = self.sentry.begin(scope, exchange.span, lambda: self._route(exchange))
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = (exchange.sent_at or time.perf_counter()) - started
            if DeferredSources.present:
                await asyncio.sleep(0)  # let asyncpg's pending query loggers run first
            request_queries.reset(queries_token)
            route = self._finish(exchange, elapsed, error)
            if sentry_request is not None:
                sentry_request.end(error, exchange.status, exchange.method, route)
            if span_token is not None:
                otel_context.detach(span_token)

    def _begin(self, exchange: _Exchange) -> Any:
        """Count the request active, start (or adopt) its span, open its query bookkeeping; the span's token."""
        scope = exchange.scope
        metrics = self.metrics
        if metrics is not None:
            active = self._active.get(exchange.method)
            if active is None:
                active = self._active[exchange.method] = value_adder(metrics.http_active.labels(exchange.method),
                                                                     held=True)
            lock = metrics.request_lock
            lock.acquire()
            try:
                active(1)
            finally:
                lock.release()
            exchange.active = active
        token = None
        if self.tracer is not None:
            exchange.span, token, exchange.owned = self._start_span(self.tracer, scope, exchange.method)
            if self.request_hook is not None:
                _call_hook(self.request_hook, exchange.span, scope)
            if not exchange.owned:
                # OpenTelemetry ends its span once the response is sent: annotate it before then.
                exchange.on_response_start = lambda: self._annotate(exchange, None)
        exchange.queries = RequestQueries(self.n_plus_one)
        if self.loop_watch is not None:
            exchange.watched = self.loop_watch.enter(scope, exchange.entry_route, exchange.entry_root)
        return token

    def _finish(self, exchange: _Exchange, elapsed: float, error: BaseException | None) -> str:
        """The request is over: metrics, the span's name and attributes (its end, if ours); the route."""
        if exchange.watched is not None:
            self.loop_watch.leave(exchange.watched)  # type: ignore[union-attr]
        series = self._series_for(exchange)
        metrics = self.metrics
        if metrics is not None:
            lock = metrics.request_lock
            lock.acquire()  # once for the request's dozen updates (not a ``with``: half the cost)
            try:
                exchange.active(-1)  # type: ignore[misc]
                self._observe(metrics, series, elapsed, exchange)
                self.header_counts.count(series.counts, exchange.scope,  # type: ignore[union-attr, arg-type]
                                         exchange.response_start, exchange.sent)
            finally:
                lock.release()
            if self.multiprocess:
                metrics.refresh_pools_if_due()
        if exchange.span is not None and (exchange.owned or exchange.on_response_start is not None):
            self._annotate(exchange, error, series)
        return series.route

    def _route(self, exchange: _Exchange) -> str:
        return self.templates.template(exchange.scope, exchange.entry_route, exchange.entry_root)

    def _series_for(self, exchange: _Exchange) -> _Series:
        key = (exchange.method, self._route(exchange), exchange.status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.metrics, self.header_counts, *key)
        return series

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

    def _observe(self, metrics: Metrics, series: _Series, elapsed: float, exchange: _Exchange) -> None:
        """The request's histograms (duration with the trace as exemplar), queries and N+1 count;
        the caller holds ``metrics.request_lock``."""
        observe(series.request_size, exchange.received, held=True)
        observe(series.response_size, exchange.sent, held=True)
        exemplar = exemplar_labels(exchange.span) if exchange.span is not None and self.exemplars else None
        observe(series.duration, elapsed, exemplar, held=True)
        queries: RequestQueries = exchange.queries  # type: ignore[assignment]
        observe(series.per_request, queries.count, held=True)
        if queries.flagged:
            metrics.n_plus_one.labels(series.route).inc(len(queries.flagged))

    def _annotate(self, exchange: _Exchange, error: BaseException | None, series: _Series | None = None) -> None:
        """Name and attribute the request's span (:func:`_close_span`), once: at the response start
        for an adopted span, else when the request is over."""
        exchange.on_response_start = None
        if series is None:
            series = self._series_for(exchange)
        attributes = dict(series.attributes)
        scope = exchange.scope
        if self.headers is not None:
            attributes.update(self.headers.request(scope.get("headers", ())))
            if exchange.response_start is not None:
                attributes.update(self.headers.response(exchange.response_start.get("headers", ())))
        _close_span(exchange.span, exchange.owned, scope, series.span_name, attributes, error, "http",
                    self.response_hook, exchange.response_start)

    async def _websocket(self, scope: Any, receive: Any, send: Any) -> None:
        """One server span per connection, its duration by route and the open connections."""
        metrics = self.metrics
        if metrics is not None:
            metrics.websocket_active.inc()
        span = span_token = None
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
                attributes: dict[str, Any] = {}
                if route != UNMATCHED:
                    attributes["http.route"] = route
                if close_code is not None:
                    attributes["websocket.close.code"] = close_code
                name = None if route == UNMATCHED else f"WEBSOCKET {route}"
                _close_span(span, owned, scope, name, attributes, error, "ws")
            if span_token is not None:
                otel_context.detach(span_token)


def _close_span(span: Any, owned: bool, scope: Any, name: str | None, attributes: dict[str, Any],
                error: BaseException | None, scheme: str, hook: ServerResponseHook | None = None,
                message: Any = None) -> None:
    """Name the server span, add the attributes every server span has, record the error, run the
    response ``hook`` with ``message``, end the span if it is ours (HTTP and WebSocket alike).

    All attributes in one call: the SDK validates each value on every call, and start-time
    attributes would be validated twice (for the sampler, then for the span).
    """
    attributes["url.path"] = scope["path"]
    attributes["url.scheme"] = scope.get("scheme", scheme)
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    if error is not None:
        if owned:  # an adopted span's owner records the exception itself
            span.record_exception(error)
        attributes["error.type"] = type(error).__qualname__
        span.set_status(_ERROR)
    elif "error.type" in attributes:
        span.set_status(_ERROR)
    set_valid_attributes(span, attributes, name)  # name None: the route is unknown, the span keeps the method
    if hook is not None:
        _call_hook(hook, span, scope, message)
    if owned:
        span.end()


def _call_hook(hook: Callable[..., None], *args: Any) -> None:
    """Run a user hook; its failure is logged, never turned into a failed request."""
    try:
        hook(*args)
    except Exception:
        logger.exception("stackwatch hook %r failed", getattr(hook, "__qualname__", hook))
