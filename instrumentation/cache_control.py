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

from functools import lru_cache

from stackwatch.core.cache_headers import directives as parse

__all__ = ["CLASSES", "cache_control_class", "cache_control_of"]

#: every label value, most restrictive first
CLASSES = ("no-store", "private-no-cache", "public-immutable", "public", "none")
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


@lru_cache(maxsize=_MEMO_LIMIT)
def cache_control_of(raw: bytes | None) -> str:
    """:func:`cache_control_class` of a raw header value, memoized (the per-request path)."""
    return cache_control_class(None if raw is None else raw.decode("latin-1"))
