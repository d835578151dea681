"""The per-route counters read from headers, counted once a request is over.

Each header list is walked once: the request's for the CDN it came through (:mod:`.cdn`), the
response's for its ``Cache-Control`` class (:mod:`.cache_control`) and, with the body bytes sent,
its ``Content-Encoding`` class when compression matters for it (:mod:`.compression`).
"""

from __future__ import annotations

from typing import Any

from stackwatch.thresholds import HTTP

from .cache_control import cache_control_of
from .cdn import cdn_class
from .compression import compression_class
from .metrics import value_adder

__all__ = ["HeaderCounts"]

_CACHE_CONTROL = b"cache-control"
_CONTENT_ENCODING = b"content-encoding"
_CONTENT_TYPE = b"content-type"


class HeaderCounts:
    """Counts one request into ``http_server_requests_cdn_total`` and its response into
    ``http_server_responses_cache_control_total`` and ``http_server_responses_content_encoding_total``."""

    def __init__(self, metrics: Any) -> None:
        self._families = {"cdn": metrics.cdn_requests, "cache_control": metrics.cache_control,
                          "content_encoding": metrics.content_encoding}
        self._children: dict[tuple[str, str, str], Any] = {}
        self._min_bytes = HTTP.compression_min_bytes

    def count(self, route: str, scope: Any, response_start: Any, sent: int) -> None:
        """Count the request of ``scope`` and the response ``response_start`` began (None: no
        response was started), whose body was ``sent`` bytes."""
        self._inc("cdn", route, cdn_class(scope.get("headers", ())))
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
        self._inc("cache_control", route, cache_control_of(cache_control))
        kind = compression_class(encoding, content_type, sent, self._min_bytes)
        if kind is not None:
            self._inc("content_encoding", route, kind)

    def _inc(self, family: str, route: str, kind: str) -> None:
        add = self._children.get((family, route, kind))
        if add is None:  # the label child's adder, without inc()'s per-call checks (the request path)
            add = self._children[(family, route, kind)] = value_adder(self._families[family].labels(route, kind))
        add(1)
