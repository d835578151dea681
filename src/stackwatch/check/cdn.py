"""``app.cdn``: is a static asset served through a CDN (or another shared cache), or from origin?

The asset at ``--static-url`` is fetched as a user would; shared caches and CDNs announce
themselves in response headers (``Age`` from any HTTP cache, ``Via``, ``X-Cache``, Cloudflare's
``CF-Cache-Status``, CloudFront's ``X-Amz-Cf-Id``, Fastly's ``X-Served-By``...). None of them: the
checklist's pitfall, "serving static assets from origin".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from stackwatch.core.redact import redact
from stackwatch.core.web import get

from .items import CDN
from .model import Finding, Status
from .runner import Budget

__all__ = ["CDN_HEADERS", "CdnCheck"]

#: headers that caches and CDNs add to what they serve (lowercase)
CDN_HEADERS = ("age", "via", "x-cache", "x-cache-hits", "x-served-by", "cf-cache-status", "cf-ray", "x-amz-cf-id",
               "x-amz-cf-pop", "x-fastly-request-id", "akamai-cache-status", "x-vercel-cache", "cdn-cache-control")


@dataclass
class CdnCheck:
    """The public URL of one static asset, ``--static-url``."""

    static_url: str

    def run(self, budget: Budget) -> Iterator[Finding]:
        shown = redact(self.static_url)
        try:
            response = get(self.static_url, budget.seconds())
        except OSError as error:
            yield CDN.finding(Status.UNKNOWN, f"GET {shown} failed: {getattr(error, 'reason', error)}",
                              "check --static-url")
            return
        if not 200 <= response.status < 400:
            yield CDN.finding(Status.UNKNOWN, f"GET {shown}: HTTP {response.status}",
                              "pass a --static-url that serves an asset")
            return
        found = [f"{name}: {response.headers[name]}" for name in CDN_HEADERS if name in response.headers]
        if found:
            yield CDN.finding(Status.PASS, f"GET {shown} went through a cache or CDN ({'; '.join(found)})")
            return
        yield CDN.finding(Status.WARN, f"static assets served from origin: GET {shown} carries none of "
                          "Age, Via, X-Cache, CF-Cache-Status or another CDN header",
                          "serve static assets through a CDN (Cloudflare, CloudFront, Fastly) or a caching "
                          "proxy, with --static-url pointing at the address users fetch them from")
