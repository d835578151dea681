"""The per-route counters read from headers, counted once a request is over.

Each header list is walked once: the request's for the CDN it came through (:mod:`.cdn`), the
response's for its ``Cache-Control`` class (:mod:`.cache_control`) and, with the body bytes sent,
its ``Content-Encoding`` class when compression matters for it (:mod:`.compression`; a large
identity response also reads the request's ``Accept-Encoding``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stackwatch.thresholds import HTTP

from .cache_control import cache_control_of
from .cdn import cdn_class
from .compression import accepts_compression, compression_class
from .metrics import value_adder

__all__ = ["HeaderCounts", "RouteCounts"]

_ACCEPT_ENCODING = b"accept-encoding"
_CACHE_CONTROL = b"cache-control"
_CONTENT_ENCODING = b"content-encoding"
_CONTENT_TYPE = b"content-type"


class RouteCounts:
    """The adders of one route's label children in the three families, by class, made on first use:
    part of the middleware's per-route record, so a count is one dict lookup by class."""

    __slots__ = ("cache_control", "cdn", "content_encoding", "route")

    def __init__(self, route: str) -> None:
        self.route = route
        self.cdn: dict[str, Callable[[float], None]] = {}
        self.cache_control: dict[str, Callable[[float], None]] = {}
        self.content_encoding: dict[str, Callable[[float], None]] = {}


class HeaderCounts:
    """Counts one request into ``http_server_requests_cdn_total`` and its response into
    ``http_server_responses_cache_control_total`` and ``http_server_responses_content_encoding_total``."""

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._routes: dict[str, RouteCounts] = {}
        self._min_bytes = HTTP.compression_min_bytes

    def route(self, route: str) -> RouteCounts:
        """The record of ``route`` (one per route, shared by its methods and status codes)."""
        counts = self._routes.get(route)
        if counts is None:
            counts = self._routes[route] = RouteCounts(route)
        return counts

    def count(self, counts: RouteCounts, scope: Any, response_start: Any, sent: int) -> None:
        """Count the request of ``scope`` on the route of ``counts`` and the response
        ``response_start`` began (None: no response was started), whose body was ``sent`` bytes;
        the caller holds the metrics' ``request_lock``."""
        metrics, route = self._metrics, counts.route
        _inc(counts.cdn, metrics.cdn_requests, route, cdn_class(scope.get("headers", ())))
        if response_start is None:
            return
        cache_control = encoding = content_type = None
        for name, value in response_start.get("headers", ()):
            name = name.lower()
            if name == _CACHE_CONTROL:
                cache_control = bytes(value) if cache_control is None else cache_control
            elif name == _CONTENT_ENCODING:
                encoding = bytes(value)
            elif name == _CONTENT_TYPE:
                content_type = bytes(value)
        _inc(counts.cache_control, metrics.cache_control, route, cache_control_of(cache_control))
        kind = compression_class(encoding, content_type, sent, self._min_bytes)
        if kind == "identity" and not accepts_compression(_accept_encoding(scope)):
            kind = None  # the client asked for no compression: identity says nothing about the service
        if kind is not None:
            _inc(counts.content_encoding, metrics.content_encoding, route, kind)


def _accept_encoding(scope: Any) -> bytes | None:
    """The request's ``Accept-Encoding`` values, joined as one (None: no such header); read only for
    a large identity response, so the request headers are walked once more only then."""
    values = [bytes(value) for name, value in scope.get("headers", ()) if name.lower() == _ACCEPT_ENCODING]
    return b",".join(values) if values else None


def _inc(adders: dict[str, Callable[[float], None]], family: Any, route: str, kind: str) -> None:
    """Add 1 to ``family{route, kind}`` through its adder in ``adders``, made on first use: the label
    child's adder, without inc()'s per-call checks (the request path)."""
    add = adders.get(kind)
    if add is None:
        add = adders[kind] = value_adder(family.labels(route, kind), held=True)
    add(1)
