"""The service's health and compression items judged from its instrumentation's series in
Prometheus (no ``--app-url``).

``stackwatch.instrumentation`` sets ``health_check_status{check}`` (1 passed, 0 failed) on every
evaluation of the health endpoint's checks and counts the responses where compression matters
(:mod:`.compression`); ``/metrics`` needs the service itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .compression import from_series
from .items import COMPRESSION, HEALTH, METRICS
from .model import Finding, Status
from .promapi import Prometheus
from .runner import Budget
from .series import judge_from_series

__all__ = ["AppSeriesCheck"]


@dataclass
class AppSeriesCheck:
    """The app items from Prometheus alone: every instrumented service's health checks and routes."""

    url: str

    def run(self, budget: Budget) -> Iterator[Finding]:
        yield from judge_from_series(self.url, budget,
                                     ((HEALTH, _health), (COMPRESSION, from_series), (METRICS, None)),
                                     "--app-url", "from the services' series in Prometheus")


def _health(prom: Prometheus) -> Finding | None:
    checks = prom.query("max by (job, check) (health_check_status)")
    if not checks:
        return None
    failing = sorted(f"{m.get('check', '?')} in {m.get('job', '?')}" for m, v in checks if v < 1)
    jobs = sorted({m.get("job", "?") for m, _ in checks})
    if failing:
        return HEALTH.finding(Status.FAIL, f"failing health checks (health_check_status): {', '.join(failing[:10])}",
                              "fix what the failing checks depend on; the service's /health body says why")
    return HEALTH.finding(Status.PASS, f"{len(checks)} health checks passing in {', '.join(jobs)} "
                          "(health_check_status)")
