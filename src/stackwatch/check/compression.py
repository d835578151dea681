"""``app.compression`` from the services' own series: which routes send large text uncompressed.

A probe of one path (``--app-url``) sees one response; ``stackwatch.instrumentation`` counts every
response where compression matters, per route, by ``Content-Encoding`` class. Read from Prometheus
over the alert's window with the alert's share (``HttpResponsesUncompressed``), a route that sends
fewer of them encoded than ``HTTP.compressed_ratio`` fails the item even when the probed path is
compressed: either source seeing a problem fails it, and the evidence says which one saw it.
"""

from __future__ import annotations

import math

from ..promql import CONTENT_ENCODING_FAMILY, compressed_share
from ..thresholds import HTTP, RATE_WINDOW
from .items import COMPRESSION
from .model import Finding, SourceUnavailable, Status
from .promapi import Prometheus, PrometheusError

__all__ = ["FIX", "combined", "from_series"]

#: how to turn compression on, for responses over the instrumentation's size floor
FIX = (f"enable gzip for responses over {HTTP.compression_min_bytes} bytes (Starlette/FastAPI: "
       f"app.add_middleware(GZipMiddleware, minimum_size={HTTP.compression_min_bytes}); or gzip at the reverse "
       "proxy, e.g. nginx gzip on; gzip_types application/json)")
#: routes named in the evidence, the worst first
_SHOWN = 5


def from_series(prom: Prometheus) -> Finding:
    """The item judged from the services' ``http_server_responses_content_encoding_total``;
    ``unknown`` naming the family when no route counted a response in the window."""
    rows = prom.query(compressed_share("job, http_route", RATE_WINDOW, recent=True))
    shares = {(labels.get("job", "?"), labels.get("http_route", "?")): share
              for labels, share in rows if not math.isnan(share)}  # NaN: no response in the window
    if not shares:
        return COMPRESSION.finding(Status.UNKNOWN, f"no {CONTENT_ENCODING_FAMILY} in the last {RATE_WINDOW} (no "
                                   "compressible response of the services was counted)",
                                   "instrument the services with stackwatch.instrumentation and have Prometheus "
                                   "scrape them (the family counts text responses, encoded or of "
                                   f"{HTTP.compression_min_bytes} bytes and more to clients accepting compression)")
    worst = sorted((share, job, route) for (job, route), share in shares.items() if share < HTTP.compressed_ratio)
    if worst:
        named = ", ".join(f"{route} in {job} ({share:.0%} encoded)" for share, job, route in worst[:_SHOWN])
        return COMPRESSION.finding(Status.FAIL, f"{len(worst)} of {len(shares)} routes sent under "
                                   f"{HTTP.compressed_ratio:.0%} of their compressible responses encoded in the last "
                                   f"{RATE_WINDOW}: {named}", FIX)
    return COMPRESSION.finding(Status.PASS, f"{len(shares)} route(s) with compressible responses in the last "
                               f"{RATE_WINDOW}, each sending at least {HTTP.compressed_ratio:.0%} of them encoded")


def combined(probe: Finding, prom: Prometheus) -> Finding:
    """The probe's finding and the series' as one: a problem either sees fails the item, a pass of
    either passes it otherwise; the evidence names both sources."""
    try:
        series = from_series(prom)
    except (PrometheusError, SourceUnavailable) as error:  # the prometheus source reports it too
        series = COMPRESSION.finding(Status.UNKNOWN, f"not read: {error}", "check --prometheus-url")
    statuses = {probe.status, series.status}
    status = next(s for s in (Status.FAIL, Status.WARN, Status.PASS, Status.UNKNOWN) if s in statuses)
    fixes = [] if status == Status.PASS else [f.fix for f in (probe, series) if f.status == status and f.fix]
    return COMPRESSION.finding(status, f"probe: {probe.evidence}; {CONTENT_ENCODING_FAMILY}: {series.evidence}",
                               "; ".join(dict.fromkeys(fixes)))
