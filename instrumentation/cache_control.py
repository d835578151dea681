"""Responses by ``Cache-Control`` class, per route: what browsers, proxies and a CDN may keep.

The checklist wants static assets cached for a year (``public, max-age=31536000, immutable``),
API responses cacheable on purpose (``public, max-age=3600``) or not (``private, no-cache``).
``http_server_responses_cache_control_total{http_route,cache_control}`` shows which routes say
what; the header value is reduced to one of five classes, so the label set stays bounded:

==================== ===========================================================================
``no-store``         ``no-store``: nothing may keep it
``private-no-cache`` ``private``, ``no-cache`` or ``max-age=0``: only the browser keeps it, or
                     every use is revalidated
``public-immutable`` ``immutable``: kept for its whole lifetime without revalidation
``public``           any other header (``public``, ``max-age=N``, ``s-maxage=N``...): shared
                     caches may keep it
``none``             no ``Cache-Control`` header: caches guess (heuristic freshness)
==================== ===========================================================================

The most restrictive directive wins (``public, no-store`` is ``no-store``).
"""

from __future__ import annotations

from typing import Any

from stackwatch.core.cache_headers import directives as parse

__all__ = ["CLASSES", "CacheControlCounter", "cache_control_class"]

#: every label value, most restrictive first
CLASSES = ("no-store", "private-no-cache", "public-immutable", "public", "none")
_HEADER = b"cache-control"
#: distinct raw header values whose class is memoized (an app sends a handful)
_MEMO_LIMIT = 256


def cache_control_class(value: str | None) -> str:
    """The class of a ``Cache-Control`` header value (``None``: no header)."""
    if value is None:
        return "none"
    directives = parse(value)
    if not directives:
        return "none"
    if "no-store" in directives:
        return "no-store"
    if "private" in directives or "no-cache" in directives or directives.get("max-age") == "0":
        return "private-no-cache"
    if "immutable" in directives:
        return "public-immutable"
    return "public"


class CacheControlCounter:
    """Counts one response per request into the family, reading the ``http.response.start`` headers."""

    def __init__(self, family: Any) -> None:
        self.family = family
        self._classes: dict[bytes | None, str] = {}
        self._children: dict[tuple[str, str], Any] = {}

    def count(self, route: str, response_start: Any) -> None:
        """Count the response that ``response_start`` began (None: no response was started)."""
        if response_start is None:
            return
        raw = None
        for name, value in response_start.get("headers", ()):
            if name.lower() == _HEADER:
                raw = bytes(value)
                break
        kind = self._classes.get(raw)
        if kind is None:
            kind = cache_control_class(None if raw is None else raw.decode("latin-1"))
            if len(self._classes) < _MEMO_LIMIT:
                self._classes[raw] = kind
        child = self._children.get((route, kind))
        if child is None:
            child = self._children[(route, kind)] = self.family.labels(route, kind)
        child.inc()
