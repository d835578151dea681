"""The service's health item judged from its instrumentation's series in Prometheus (no ``--app-url``).

``stackwatch.instrumentation`` sets ``health_check_status{check}`` (1 passed, 0 failed) on every
evaluation of the health endpoint's checks; compression and ``/metrics`` need the service itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .items import COMPRESSION, HEALTH, METRICS
from .model import Finding, Status
from .promapi import Prometheus
from .runner import Budget
from .series import judge_from_series

__all__ = ["AppSeriesCheck"]


@dataclass
class AppSeriesCheck:
    """The app items from Prometheus alone: every instrumented service's health checks."""

    url: str

    def run(self, budget: Budget) -> Iterator[Finding]:
        yield from judge_from_series(self.url, budget, ((HEALTH, _health), (COMPRESSION, None), (METRICS, None)),
                                     "--app-url", "from the services' health_check_status in Prometheus")


def _health(prom: Prometheus) -> Finding | None:
    checks = prom.query("max by (job, check) (health_check_status)")
    if not checks:
        return None
    failing = sorted(f"{m.get('check', '?')} in {m.get('job', '?')}" for m, v in checks if v < 1)
    jobs = sorted({m.get("job", "?") for m, _ in checks})
    if failing:
        return HEALTH.finding(Status.FAIL, f"failing health checks: {', '.join(failing[:10])}",
                              "fix what the failing checks depend on; the service's /health body says why")
    return HEALTH.finding(Status.PASS, f"{len(checks)} health checks passing in {', '.join(jobs)}")
