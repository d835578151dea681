"""Requests by the CDN they came through, per route: are static assets served through a CDN?

A CDN in front of the origin adds request headers of its own: ``CDN-Loop`` (RFC 8586, every
conforming CDN), ``CF-Ray`` (Cloudflare), ``X-Amz-Cf-Id`` (CloudFront), ``Fastly-*`` (Fastly),
``Akamai-Origin-Hop`` (Akamai), ``X-Azure-FDID`` (Azure Front Door), and ``Via``.
``http_server_requests_cdn_total{http_route,cdn}`` counts each request under the CDN its headers
name -- ``cloudflare``, ``cloudfront``, ``fastly``, ``akamai``, ``azure``, ``other`` (a ``CDN-Loop``
or ``Via`` naming none of those: another CDN or a caching proxy such as Varnish) or ``none``
(straight from a client or a plain load balancer) -- so "static assets served from origin without
a CDN" is a query: the requests with ``cdn="none"`` on the routes that serve fingerprinted assets
(``http_server_responses_cache_control_total{cache_control="public-immutable"}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

__all__ = ["CLASSES", "cdn_class"]

#: every label value
CLASSES = ("cloudflare", "cloudfront", "fastly", "akamai", "azure", "other", "none")
#: request headers only one CDN sends -> its name; headers any CDN or caching proxy may add, whose
#: value may name the vendor -> "" (names as ASGI servers give them: lowercased)
_MARKERS = {b"cf-ray": "cloudflare", b"cf-connecting-ip": "cloudflare", b"x-amz-cf-id": "cloudfront",
            b"akamai-origin-hop": "akamai", b"x-azure-fdid": "azure", b"cdn-loop": "", b"via": ""}
_FASTLY = b"fastly-"
_NAMED_IN_VALUE = (("cloudflare", "cloudflare"), ("cloudfront", "cloudfront"), ("fastly", "fastly"),
                   ("akamai", "akamai"), ("azure", "azure"))


@lru_cache(maxsize=256)
def _named(value: bytes) -> str:
    """The vendor a ``CDN-Loop`` or ``Via`` value names, else ``other``."""
    text = value.decode("latin-1").lower()
    return next((name for marker, name in _NAMED_IN_VALUE if marker in text), "other")


def cdn_class(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The CDN a request's raw ASGI headers say it came through; a vendor's own header wins.

    The request path: one dict lookup per header (the names are lowercase, as ASGI servers send
    them and the trace-context extraction relies on too).
    """
    generic = None
    for name, value in headers:
        vendor = _MARKERS.get(name)
        if vendor is None:
            if name.startswith(_FASTLY):
                return "fastly"
        elif vendor:
            return vendor
        elif generic in (None, "other"):
            generic = _named(bytes(value))
    return generic or "none"
