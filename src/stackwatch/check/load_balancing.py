"""``ops.load_balancing``: at least two healthy instances of each service receive traffic, in fair
shares, and the instances tell a balancer "alive" apart from "ready".

Traffic is read where it lands: each instance's share of its service's requests, from the
instrumentation's series in Prometheus (``--prometheus-url``), so the verdict holds for nginx, a
cloud balancer or a Kubernetes Service alike. Readiness and liveness are probed through
``--app-url`` (the balancer's address): ``/health/ready`` must run the dependency checks and
``/health/live`` must not (a database outage would otherwise get every instance restarted).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from stackwatch.core.redact import redact
from stackwatch.core.web import get

from ..promql import instance_request_share
from ..thresholds import HTTP, RATE_WINDOW, SELECTORS, HttpThresholds
from .items import LOAD_BALANCING
from .model import Finding, SourceUnavailable, Status
from .promapi import Prometheus, PrometheusError
from .runner import Budget

__all__ = ["LIVE_PATH", "READY_PATH", "LoadBalancingCheck"]

#: stackwatch.instrumentation's defaults (docs/instrumentation.md)
LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
_FIX = ("run at least two instances behind the load balancer (nginx: an upstream with least_conn and a server "
        "line per instance; provisioning/nginx/) and keep every one passing /health/ready")

Instance = tuple[str, str]


@dataclass
class LoadBalancingCheck:
    """``--prometheus-url`` (required) and ``--app-url`` (the address clients use; optional)."""

    prometheus_url: str
    app_url: str | None = None
    thresholds: HttpThresholds = HTTP

    def run(self, budget: Budget) -> Iterator[Finding]:
        self.budget = budget
        try:
            traffic = self._traffic(Prometheus(self.prometheus_url, budget))
        except (PrometheusError, SourceUnavailable) as error:  # the prometheus source reports it too
            yield LOAD_BALANCING.finding(Status.UNKNOWN, f"not checked: {error}", "check --prometheus-url")
            return
        if traffic is None:
            yield LOAD_BALANCING.finding(
                Status.UNKNOWN, f"no instrumented service with more than {self.thresholds.min_requests_per_second:g} "
                f"req/s over the last {RATE_WINDOW} in Prometheus", "instrument the services with "
                "stackwatch.instrumentation and have Prometheus scrape every instance (not the balancer)")
            return
        status, evidence, fix = traffic
        probed = self._probes()
        if probed is None:
            evidence += "; readiness and liveness not probed"
            if status is Status.PASS:
                status = Status.UNKNOWN
                fix = f"pass --app-url (the load balancer's address) to probe {READY_PATH} and {LIVE_PATH}"
        else:
            probe_status, probe_evidence, probe_fix = probed
            evidence += "; " + probe_evidence
            if probe_status is Status.FAIL:
                fix = "; ".join(f for f in (fix, probe_fix) if f)
                status = Status.FAIL
        yield LOAD_BALANCING.finding(status, evidence, fix)

    def _traffic(self, prom: Prometheus) -> tuple[Status, str, str] | None:
        """The verdict on where the requests go, or None when no service has traffic to judge."""
        limit = self.thresholds.min_requests_per_second
        busy = {m.get("job", "?") for m, v in prom.query(
            f"sum by (job) (rate(http_server_request_duration_seconds_count[{RATE_WINDOW}]))") if v > limit}
        if not busy:
            return None
        up = {_key(m): v for m, v in prom.query(f"up{{{SELECTORS.services}}}") if m.get("job") in busy}
        shares = {_key(m): v for m, v in prom.query(instance_request_share(RATE_WINDOW))}
        health = {_key(m): v for m, v in prom.query("min by (job, instance) (health_check_status)")}
        failing: list[str] = []
        skewed: list[str] = []
        described: list[str] = []
        for job in sorted(busy):
            instances = sorted(inst for j, inst in up if j == job)
            live = [inst for inst in instances if up[(job, inst)] == 1]
            fair = len(live) or 1
            serving = []
            for inst in instances:
                key = (job, inst)
                share = shares.get(key, 0.0)
                if up[key] != 1:
                    failing.append(f"{inst} of {job} down")
                elif health.get(key, 1.0) < 1:
                    failing.append(f"{inst} of {job} fails its health checks")
                elif share * fair < self.thresholds.instance_share_low:
                    failing.append(f"{inst} of {job} out of rotation ({share:.0%} of the requests)")
                else:
                    serving.append(inst)
                    if len(live) > 1 and share * fair > self.thresholds.instance_share_high:
                        skewed.append(f"{inst} of {job} takes {share:.0%} of the requests ({share * fair:.2f}x its "
                                      "fair share)")
            if len(serving) < self.thresholds.min_instances:
                failing.append(f"{len(serving)} healthy instance(s) of {job} receive traffic (want >= "
                               f"{self.thresholds.min_instances})")
            checks = "health_check_status reported" if any(j == job for j, _ in health) else "no health_check_status"
            listed = ", ".join(f"{inst} {shares.get((job, inst), 0.0):.0%}" for inst in instances)
            described.append(f"{job}: {len(live)} of {len(instances)} instances up, request shares over "
                             f"{RATE_WINDOW}: {listed} ({checks})")
        evidence = "; ".join(described)
        if failing:
            return Status.FAIL, "; ".join(failing) + " -- " + evidence, _FIX
        if skewed:
            return Status.WARN, "; ".join(skewed) + " -- " + evidence, (
                "spread the load: least_conn or round robin, no session affinity (ip_hash, sticky cookies) for "
                "stateless services, equal weights")
        return Status.PASS, evidence, ""

    def _probes(self) -> tuple[Status, str, str] | None:
        """Readiness consults the dependencies, liveness does not; None without ``--app-url``."""
        if self.app_url is None:
            return None
        found: dict[str, int | None] = {}
        for path in (READY_PATH, LIVE_PATH):
            url = self.app_url.rstrip("/") + path
            try:
                response = get(url, self.budget.seconds(), {"Accept": "application/json"})
            except OSError as error:
                return Status.FAIL, f"GET {redact(url)} failed: {getattr(error, 'reason', error)}", "check --app-url"
            if response.status == 404:
                return Status.FAIL, f"GET {path}: HTTP 404", (f"serve {READY_PATH} (dependency checks) and "
                                                               f"{LIVE_PATH} (the process only) for the balancer")
            found[path] = _checks(response.body)
        ready, live = found[READY_PATH], found[LIVE_PATH]
        evidence = f"{READY_PATH} runs {ready or 0} dependency check(s), {LIVE_PATH} runs {live or 0}"
        if not ready:
            return Status.FAIL, evidence, (f"make {READY_PATH} check the dependencies (instrument(app, health_checks="
                                           "{...}), so the balancer stops sending to an instance that cannot serve")
        if live:
            return Status.FAIL, evidence, (f"keep {LIVE_PATH} free of dependency checks: a database outage would get "
                                           "every instance restarted")
        return Status.PASS, evidence, ""


def _key(labels: dict[str, str]) -> Instance:
    return labels.get("job", "?"), labels.get("instance", "?")


def _checks(body: bytes) -> int | None:
    """How many named checks a health body reports (its ``checks`` object), None when it has none."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    checks = parsed.get("checks") if isinstance(parsed, dict) else None
    return len(checks) if isinstance(checks, dict) else None
