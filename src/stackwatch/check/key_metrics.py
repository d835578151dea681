"""The checklist's key application metrics, per service (``job``): response time p50/p95/p99
(``app.latency``), error rate (``app.error_ratio``) and throughput (``app.throughput``).

Read from the instrumentation's ``http_server_request_duration_seconds`` over the rules' window,
with the alerts' thresholds and traffic guard: a service over its threshold fails; a single
route over it (what HttpLatencyP99High and HttpErrorRatioHigh fire on) warns. Services below the
traffic guard are listed but not judged. Standard library only.
"""

from __future__ import annotations

from ..promql import http_request_quantile, http_request_rate
from ..thresholds import HTTP, RATE_WINDOW, HttpThresholds
from .items import ERROR_RATIO, LATENCY, THROUGHPUT
from .model import Finding, Status
from .promapi import Prometheus

__all__ = ["error_ratio_finding", "latency_finding", "throughput_finding"]

_QUANTILES = (0.5, 0.95, 0.99)
_SERVICE = "job"
_ROUTE = "job, http_route"
_NO_TRAFFIC = ("instrument the service with stackwatch.instrumentation, have Prometheus scrape it and let it serve "
               "traffic")


def _name(labels: dict[str, str]) -> str:
    route = labels.get("http_route")
    return f"{route} in {labels.get('job', '?')}" if route else labels.get("job", "?")


def _values(prom: Prometheus, promql: str) -> dict[str, float]:
    """``{service or route: value}``, NaN (no request in any bucket) left out."""
    return {_name(labels): value for labels, value in prom.query(promql) if value == value}


def _unjudged(prom: Prometheus, http: HttpThresholds) -> str:
    """Why nothing was judged: no series at all, or too little traffic (with the rates)."""
    rates = _values(prom, http_request_rate(_SERVICE, RATE_WINDOW))
    if not rates:
        return "no http_server_request_duration_seconds series in Prometheus"
    listed = ", ".join(f"{job} {rate:.2f} req/s" for job, rate in sorted(rates.items()))
    return f"no service answers more than {http.min_requests_per_second:g} req/s over {RATE_WINDOW} ({listed})"


def latency_finding(prom: Prometheus, http: HttpThresholds = HTTP) -> Finding:
    """p50/p95/p99 of each busy service; its p99 against the checklist's p99 threshold."""
    guard = http.min_requests_per_second
    by_service = {q: _values(prom, http_request_quantile(q, _SERVICE, RATE_WINDOW, guard)) for q in _QUANTILES}
    p99 = by_service[0.99]
    if not p99:
        return LATENCY.finding(Status.UNKNOWN, _unjudged(prom, http), _NO_TRAFFIC)
    limit = http.latency_p99_seconds
    listed = "; ".join(f"{job} " + "/".join(f"{by_service[q].get(job, float('nan')):.3f}s" for q in _QUANTILES)
                       for job in sorted(p99))
    evidence = f"p50/p95/p99 over {RATE_WINDOW}: {listed} (p99 threshold {limit:g}s)"
    slow = sorted(job for job, value in p99.items() if value > limit)
    routes = sorted(((value, route) for route, value in _values(
        prom, http_request_quantile(0.99, _ROUTE, RATE_WINDOW, guard)).items() if value > limit), reverse=True)
    slow_routes = "; routes with p99 over it: " + ", ".join(f"{r} {v:.2f}s" for v, r in routes[:5]) if routes else ""
    fix = ("open the slow routes' exemplars on the Service dashboard: the traces show where the time goes "
           "(slow statements, N+1 queries, calls to other services)")
    if slow:
        return LATENCY.finding(Status.FAIL, f"{evidence}; over it: {', '.join(slow)}{slow_routes}", fix)
    if routes:
        return LATENCY.finding(Status.WARN, evidence + slow_routes, fix)
    return LATENCY.finding(Status.PASS, evidence)


def _error_ratio(by: str, guard: float) -> str:
    """Share of requests answered 5xx ``by``, 0 where none failed, only above ``guard`` req/s."""
    requests = http_request_rate(by, RATE_WINDOW)
    errors = http_request_rate(by, RATE_WINDOW, '{http_response_status_code=~"5.."}')
    return f"({errors} or {requests} * 0) / {requests} and {requests} > {guard:g}"


def error_ratio_finding(prom: Prometheus, http: HttpThresholds = HTTP) -> Finding:
    """Each busy service's share of 5xx responses against the checklist's error rate threshold."""
    guard = http.min_requests_per_second
    ratios = _values(prom, _error_ratio(_SERVICE, guard))
    if not ratios:
        return ERROR_RATIO.finding(Status.UNKNOWN, _unjudged(prom, http), _NO_TRAFFIC)
    limit = http.error_ratio
    evidence = (f"5xx share over {RATE_WINDOW}: " + ", ".join(f"{job} {v:.1%}" for job, v in sorted(ratios.items()))
                + f" (threshold {limit:.0%})")
    failing = sorted(job for job, value in ratios.items() if value > limit)
    routes = sorted(((v, r) for r, v in _values(prom, _error_ratio(_ROUTE, guard)).items() if v > limit), reverse=True)
    failing_routes = "; routes over it: " + ", ".join(f"{r} {v:.0%}" for v, r in routes[:5]) if routes else ""
    fix = "look at the failing requests in Sentry (events carry the trace id) and fix the errors they show"
    if failing:
        return ERROR_RATIO.finding(Status.FAIL, f"{evidence}; over it: {', '.join(failing)}{failing_routes}", fix)
    if routes:
        return ERROR_RATIO.finding(Status.WARN, evidence + failing_routes, fix)
    return ERROR_RATIO.finding(Status.PASS, evidence)


def throughput_finding(prom: Prometheus, http: HttpThresholds = HTTP) -> Finding:
    """Requests per second of every instrumented service (information: there is no right number)."""
    rates = _values(prom, http_request_rate(_SERVICE, RATE_WINDOW))
    if not rates:
        return THROUGHPUT.finding(Status.UNKNOWN, "no http_server_request_duration_seconds series in Prometheus",
                                  _NO_TRAFFIC)
    listed = ", ".join(f"{job} {rate:.2f} req/s" for job, rate in sorted(rates.items(), key=lambda kv: -kv[1]))
    return THROUGHPUT.finding(Status.PASS, f"requests per second over {RATE_WINDOW} (information): {listed}")
