"""Items judged from the stackwatch exporter's and the service's series in Prometheus, for the
systems the check was not given directly.

Teams often have Prometheus but no database credentials: with only ``--prometheus-url`` the
PostgreSQL, Redis and app items that the exporter (or the instrumentation) already measures are
judged from those series, and the evidence says so. Items the series cannot answer stay
``unknown``, naming the flag that would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from .model import Finding, Item, SourceUnavailable, Status
from .promapi import Prometheus, PrometheusError
from .runner import Budget

__all__ = ["FROM_SERIES", "Judge", "judge_from_series", "quoted"]

FROM_SERIES = "from the stackwatch exporter's series in Prometheus"

#: an item's check: its finding, or None when Prometheus has no series to judge it by
Judge = Callable[[Prometheus], "Finding | None"]


def quoted(value: str) -> str:
    """``value`` as a PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def judge_from_series(url: str, budget: Budget, checks: Sequence[tuple[Item, Judge | None]], flag: str,
                      source: str = FROM_SERIES) -> Iterator[Finding]:
    """One finding per item: judged by its check when Prometheus has the series, else ``unknown``
    naming ``flag``. A check of ``None`` means the series cannot answer that item at all."""
    prom = Prometheus(url, budget)
    for item, check in checks:
        if check is None:
            yield item.finding(Status.UNKNOWN, f"not checked: needs {flag} (Prometheus's series do not "
                               "answer this item)", f"pass {flag}")
            continue
        try:
            finding = check(prom)
        except (PrometheusError, SourceUnavailable) as error:  # the prometheus source reports it too
            yield item.finding(Status.UNKNOWN, f"not checked: {error}", f"pass {flag}")
            continue
        if finding is None:
            yield item.finding(Status.UNKNOWN, "not checked: no --" + flag.lstrip("-") + " and Prometheus has "
                               "no series for it", f"pass {flag}, or have Prometheus scrape a stackwatch "
                               "exporter (or the instrumented service) that measures it")
        elif finding.status == Status.UNKNOWN:
            yield finding
        else:
            yield item.finding(finding.status, f"{finding.evidence} ({source}; no {flag})", finding.fix)
