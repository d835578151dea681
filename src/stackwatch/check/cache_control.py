"""``app.cache_control``: fingerprinted static assets cached for a year, API responses explicit.

Two halves, each from what it can be seen in: a fingerprinted asset's own ``Cache-Control``
(``--static-url``, fetched as a browser would) must be ``public, max-age>=31536000, immutable``;
every API route must say how its responses may be cached, read from the services'
``http_server_responses_cache_control_total`` in Prometheus (a route whose responses mostly carry
no header leaves caches to guess). A pass needs both halves; a missing one is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from stackwatch.core.redact import redact
from stackwatch.core.web import get

from ..core.cache_headers import directives as parse
from ..promql import recent_increase
from ..thresholds import HTTP, RATE_WINDOW
from .items import CACHE_CONTROL
from .model import Finding, SourceUnavailable, Status
from .promapi import Prometheus, PrometheusError
from .runner import Budget

__all__ = ["CacheControlCheck", "static_asset_verdict"]

#: route labels that are not an API route of the service (no route matched, past the label cap)
_NOT_ROUTES = ("UNMATCHED", "OTHER")
_STATIC_FIX = ("serve fingerprinted assets (name.<hash>.js) with Cache-Control: public, max-age=31536000, "
               "immutable (Starlette: a StaticFiles subclass or the reverse proxy; nginx: add_header)")


def static_asset_verdict(header: str | None) -> str | None:
    """What the ``Cache-Control`` of a fingerprinted asset lacks, or None when it is right."""
    if header is None:
        return "no Cache-Control header"
    directives = parse(header)
    lacking = [d for d in ("no-store", "no-cache", "private") if d in directives]
    if lacking:
        return f"{', '.join(lacking)} keeps it out of shared caches"
    wanted = []
    if "public" not in directives:
        wanted.append("public")
    try:
        max_age = int(directives.get("max-age", ""))
    except ValueError:
        max_age = -1
    if max_age < HTTP.static_max_age_seconds:
        wanted.append(f"max-age>={HTTP.static_max_age_seconds}")
    if "immutable" not in directives:
        wanted.append("immutable")
    return f"lacks {', '.join(wanted)}" if wanted else None


@dataclass
class CacheControlCheck:
    """``--static-url`` and/or ``--prometheus-url``; either may be None."""

    static_url: str | None
    prometheus_url: str | None

    def run(self, budget: Budget) -> Iterator[Finding]:
        halves = [self._static(budget), self._api(budget)]
        evidence = "; ".join(text for _, text, _ in halves)
        fixes = [fix for status, _, fix in halves if fix and status in (Status.FAIL, Status.WARN, Status.UNKNOWN)]
        statuses = {status for status, _, _ in halves}
        for status in (Status.FAIL, Status.WARN, Status.UNKNOWN):
            if status in statuses:
                yield CACHE_CONTROL.finding(status, evidence, "; ".join(fixes))
                return
        yield CACHE_CONTROL.finding(Status.PASS, evidence)

    def _static(self, budget: Budget) -> tuple[Status, str, str]:
        if self.static_url is None:
            return Status.UNKNOWN, "static assets not checked", "pass --static-url (a fingerprinted asset's URL)"
        shown = redact(self.static_url)
        try:
            response = get(self.static_url, budget.seconds())
        except OSError as error:
            return Status.FAIL, f"GET {shown} failed: {getattr(error, 'reason', error)}", "check --static-url"
        if response.status != 200:
            return Status.FAIL, f"GET {shown}: HTTP {response.status}", "pass a --static-url that serves an asset"
        header = response.headers.get("cache-control")
        problem = static_asset_verdict(header)
        said = f"Cache-Control: {header}" if header is not None else "no Cache-Control"
        if problem is not None:
            return Status.FAIL, f"static asset {shown}: {said} ({problem})", _STATIC_FIX
        return Status.PASS, f"static asset {shown}: {said}", ""

    def _api(self, budget: Budget) -> tuple[Status, str, str]:
        if self.prometheus_url is None:
            return (Status.UNKNOWN, "API responses not checked",
                    "pass --prometheus-url (the services' http_server_responses_cache_control_total)")
        try:
            rows = Prometheus(self.prometheus_url, budget).query(
                "sum by (job, http_route, cache_control) "
                f"({recent_increase('http_server_responses_cache_control_total', RATE_WINDOW)})")
        except (PrometheusError, SourceUnavailable) as error:  # the prometheus source reports it too
            return Status.UNKNOWN, f"API responses not checked: {error}", "check --prometheus-url"
        totals: dict[tuple[str, str], float] = {}
        implicit: dict[tuple[str, str], float] = {}
        for labels, value in rows:
            key = (labels.get("job", "?"), labels.get("http_route", "?"))
            if key[1] in _NOT_ROUTES:
                continue
            totals[key] = totals.get(key, 0.0) + value
            if labels.get("cache_control") == "none":
                implicit[key] = implicit.get(key, 0.0) + value
        served = {key: total for key, total in totals.items() if total > 0}
        if not served:
            return (Status.UNKNOWN, f"no http_server_responses_cache_control_total in the last {RATE_WINDOW}",
                    "instrument the services with stackwatch.instrumentation and have Prometheus scrape them")
        # a route is implicit when most of its responses carry no header (an odd error page may not)
        bad = sorted(f"{route} in {job}" for (job, route), total in served.items()
                     if implicit.get((job, route), 0.0) > total / 2)
        if bad:
            return (Status.WARN, f"{len(bad)} of {len(served)} routes send no Cache-Control: {', '.join(bad[:10])}",
                    "say how each API response may be cached: public, max-age=N for shared data, private, no-cache "
                    "for user-specific data, no-store for secrets")
        return Status.PASS, f"all {len(served)} routes with responses in the last {RATE_WINDOW} send Cache-Control", ""
