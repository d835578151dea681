"""Items read from Prometheus: client pool waiting, N+1 queries, alert rules, Alertmanager,
scrape targets, the monitored processes' resource limits, the services' key metrics and
monitoring tools (:mod:`.key_metrics`, :mod:`.tooling`) and the read share (:mod:`.read_share`).

The application-side items rely on the instrumentation's metric names (``db_client_*``), the
limits on the process exporter's ``process_cgroup_*_limited``; an absent family is ``unknown``
with what would produce it, never a pass.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stackwatch.core.redact import redact_text
from stackwatch.core.web import get

from ..promql import n_plus_one_detections, pool_wait_mean
from ..thresholds import (
    EVENT_WINDOW,
    HTTP,
    POOL,
    POSTGRES,
    RATE_WINDOW,
    HttpThresholds,
    PoolThresholds,
    PostgresThresholds,
)
from .items import (
    ALERTMANAGER,
    APM,
    ASYNC,
    ERROR_RATIO,
    ERROR_TRACKING,
    LATENCY,
    LIMITS,
    N_PLUS_ONE,
    POOL_SETTINGS,
    POOL_WAITING,
    READ_SHARE,
    RULES,
    TARGETS,
    THROUGHPUT,
    TRACING,
)
from .items import PROMETHEUS_ITEMS as ITEMS
from .jobs import async_processing_finding
from .key_metrics import error_ratio_finding, latency_finding, throughput_finding
from .model import Finding, Item, SourceUnavailable, Status
from .pool_settings import pool_settings_finding
from .promapi import Prometheus, PrometheusError
from .read_share import read_share_finding
from .runner import Budget
from .tooling import apm_finding, error_tracking_finding, tracing_finding

__all__ = ["ITEMS", "PrometheusCheck"]


#: pools and routes are named with their service (``job``): two services may share a pool name
_POOL_BY = "job, pool_name"
_INSTRUMENT = "instrument the service with stackwatch.instrumentation and have Prometheus scrape its /metrics"


@dataclass
class PrometheusCheck:
    """The Prometheus-backed items for one Prometheus server."""

    url: str
    pool: PoolThresholds = POOL
    http: HttpThresholds = HTTP
    postgres: PostgresThresholds = POSTGRES

    def run(self, budget: Budget) -> Iterator[Finding]:
        self.prom = Prometheus(self.url, budget)
        self.budget = budget
        try:
            self.prom.api("status/buildinfo")  # unreachable -> SourceUnavailable before any item
        except PrometheusError as error:  # answered, but not as a Prometheus: a usage error (exit 2)
            raise SourceUnavailable(redact_text(str(error))) from None
        checks: tuple[tuple[Item, Callable[[], Finding]], ...] = (
            (POOL_WAITING, self._pool), (POOL_SETTINGS, lambda: pool_settings_finding(self.prom, self.pool)),
            (N_PLUS_ONE, self._n_plus_one), (LIMITS, self._limits),
            (RULES, self._rules), (ALERTMANAGER, self._alertmanager), (TARGETS, self._targets),
            (ASYNC, lambda: async_processing_finding(self.prom, self.http)),
            (LATENCY, lambda: latency_finding(self.prom, self.http)),
            (ERROR_RATIO, lambda: error_ratio_finding(self.prom, self.http)),
            (THROUGHPUT, lambda: throughput_finding(self.prom, self.http)),
            (TRACING, lambda: tracing_finding(self.prom)), (ERROR_TRACKING, lambda: error_tracking_finding(self.prom)),
            (APM, lambda: apm_finding(self.prom)), (READ_SHARE, lambda: read_share_finding(self.prom, self.postgres)))
        for item, check in checks:
            try:
                yield check()
            except PrometheusError as error:
                yield item.finding(Status.UNKNOWN, redact_text(str(error)), "check --prometheus-url")

    def _pool(self) -> Finding:
        waiting = self.prom.query(f"max by ({_POOL_BY}) (max_over_time(db_client_connection_pending_requests"
                                  f"[{RATE_WINDOW}]))")
        if not waiting:
            return POOL_WAITING.finding(Status.UNKNOWN, "no db_client_connection_pending_requests series", _INSTRUMENT)
        always = {_pool_name(labels): value for labels, value in self.prom.query(
            f"min by ({_POOL_BY}) (min_over_time(db_client_connection_pending_requests[{RATE_WINDOW}]))")}
        waits = {_pool_name(labels): value
                 for labels, value in self.prom.query(pool_wait_mean(_POOL_BY, RATE_WINDOW))}
        pools = sorted(waiting, key=lambda r: -r[1])
        listed = ", ".join(
            f"{name}: max {value:g}, min {always.get(name, 0):g}"
            + (f", mean wait {waits[name] * 1000:.0f}ms" if name in waits else "")
            for name, value in ((_pool_name(labels), value) for labels, value in pools))
        evidence = f"requests waiting for a connection over {RATE_WINDOW}: {listed}"
        fix = ("raise the pool's max size up to the (cores x 2) + spindles guidance, shorten what holds a "
               "connection (no I/O inside transactions), or add a pooler")
        limit, slow = self.pool.pending_requests, self.pool.wait_mean_seconds
        if any(value > limit for value in always.values()):
            return POOL_WAITING.finding(Status.FAIL, evidence + " (waiting throughout)", fix)
        if any(value > limit for _, value in waiting):
            return POOL_WAITING.finding(Status.WARN, evidence + " (at times)", fix)
        if any(value > slow for value in waits.values()):
            return POOL_WAITING.finding(Status.WARN, evidence + f" (mean wait over {slow * 1000:.0f}ms)", fix)
        return POOL_WAITING.finding(Status.PASS, evidence)

    def _n_plus_one(self) -> Finding:
        recent = self.prom.query(n_plus_one_detections(EVENT_WINDOW, "job, http_route"))
        if not recent:
            instrumented = self.prom.query("count(db_client_queries_per_request_count)")
            if not instrumented:
                return N_PLUS_ONE.finding(Status.UNKNOWN, "no db_client_n_plus_one_total or "
                                          "db_client_queries_per_request series", _INSTRUMENT)
            return N_PLUS_ONE.finding(Status.PASS, "instrumented routes report no N+1 detection")
        limit = self.http.n_plus_one_detections
        bad = sorted(((value, f"{labels.get('http_route', '?')} in {labels.get('job', '?')}")
                      for labels, value in recent if value > limit), reverse=True)
        if bad:
            listed = ", ".join(f"{route} ({value:.0f})" for value, route in bad[:10])
            return N_PLUS_ONE.finding(Status.FAIL, f"N+1 detections in the last {EVENT_WINDOW} (a statement "
                                      f"repeated >= {self.http.n_plus_one_repeat_count} times in one request): "
                                      f"{listed}", "load the related rows with a JOIN or one IN (...) query "
                                      "(eager loading) instead of one query per row")
        return N_PLUS_ONE.finding(Status.PASS, f"no N+1 detection in the last {EVENT_WINDOW} on "
                                  f"{len(recent)} instrumented routes")

    def _limits(self) -> Finding:
        rows = self.prom.query('{__name__=~"process_cgroup_(memory|cpu)_limited"}')
        if not rows:
            return LIMITS.finding(Status.UNKNOWN, "no process_cgroup_*_limited series",
                                  "run the stackwatch exporter's process collector where the services run")
        missing = sorted({f"{labels.get('cgroup', '?')} ({labels['__name__'].split('_')[2]})"
                          for labels, value in rows if value == 0})
        total = len({labels.get("cgroup", "?") for labels, _ in rows})
        if missing:
            return LIMITS.finding(Status.FAIL, f"no limit on {', '.join(missing[:10])} of {total} cgroups",
                                  "set CPU and memory limits (compose: deploy.resources.limits; "
                                  "Kubernetes: resources.limits; systemd: CPUQuota=, MemoryMax=)")
        return LIMITS.finding(Status.PASS, f"CPU and memory limits set on all {total} monitored cgroups")

    def _rules(self) -> Finding:
        groups = self.prom.api("rules", type="alert")["groups"]
        rules = [r for g in groups for r in g.get("rules", [])]
        if not rules:
            return RULES.finding(Status.FAIL, "Prometheus has no alerting rules loaded",
                                 "load alerts/*.yml through rule_files in prometheus.yml")
        broken = [r["name"] for r in rules if r.get("health", "ok") != "ok"]
        evidence = f"{len(rules)} alerting rules in {len(groups)} groups"
        if broken:
            return RULES.finding(Status.WARN, evidence + f"; failing to evaluate: {', '.join(broken[:10])}",
                                 "fix the failing rules' expressions (Prometheus /rules shows the error)")
        return RULES.finding(Status.PASS, evidence)

    def _alertmanager(self) -> Finding:
        active = [a["url"] for a in self.prom.api("alertmanagers").get("activeAlertmanagers", [])]
        if not active:
            return ALERTMANAGER.finding(Status.FAIL, "Prometheus sends alerts to no Alertmanager",
                                        "configure alerting.alertmanagers in prometheus.yml")
        reachable = [url for url in active if self._healthy(url)]
        shown = ", ".join(redact_text(u) for u in active)
        if reachable:
            return ALERTMANAGER.finding(Status.PASS, f"Prometheus sends alerts to {shown}; "
                                        f"{len(reachable)} answered /-/healthy")
        return ALERTMANAGER.finding(Status.WARN, f"Prometheus sends alerts to {shown}, but none answered "
                                    "/-/healthy from this host", "check that Alertmanager is running (or run "
                                    "the check where its address resolves)")

    def _healthy(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        try:
            return get(f"{parts.scheme}://{parts.netloc}/-/healthy", self.budget.seconds(2.0)).status == 200
        except OSError:
            return False

    def _targets(self) -> Finding:
        active = self.prom.api("targets", state="active")["activeTargets"]
        if not active:
            return TARGETS.finding(Status.FAIL, "Prometheus scrapes no targets", "add scrape_configs for the "
                                   "stackwatch exporter, the services and Prometheus itself")
        down = [t for t in active if t.get("health") != "up"]
        jobs = sorted({t["labels"].get("job", "?") for t in active})
        if down:
            listed = "; ".join(f"{t['labels'].get('job', '?')} {t['labels'].get('instance', '?')}: "
                               f"{t.get('health')} {redact_text(t.get('lastError', ''))}".strip() for t in down[:10])
            return TARGETS.finding(Status.FAIL, f"{len(down)} of {len(active)} targets not up: {listed}",
                                   "start the target or fix its address; the lastError says why")
        return TARGETS.finding(Status.PASS, f"all {len(active)} targets up (jobs: {', '.join(jobs)})")


def _pool_name(labels: dict[str, str]) -> str:
    return f"{labels.get('pool_name', '')} in {labels.get('job', '?')}"
