"""The checklist's monitoring tools, per service: distributed tracing (``app.tracing``), error
tracking (``app.error_tracking``) and an APM tool (``app.apm``).

They are settings inside each service, so they are read from the info series its
instrumentation exports (``stackwatch_instrumentation_info``, see
:mod:`stackwatch.instrumentation.info`); a service that does not export it is not judged.
The worst instance of a service (``job``) speaks for it. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

from .items import APM, ERROR_TRACKING, TRACING
from .model import Finding, Item, Status
from .promapi import Prometheus

__all__ = ["apm_finding", "error_tracking_finding", "tracing_finding"]

#: the family of :mod:`stackwatch.instrumentation.info` (named here: the check does not import the instrumentation)
INFO_FAMILY = "stackwatch_instrumentation_info"
_LABELS = "job, tracing, traces_exporter, error_tracking, apm"
#: label values of ``traces_exporter`` under which spans leave the process
_EXPORTED = {"otlp": "traces exported over OTLP", "service": "traces to the service's own tracer provider"}

#: one service's verdict: (status, what it has); the worst service's status is the item's
Verdict = Callable[[dict[str, str]], tuple[Status, str]]


def _judge(prom: Prometheus, item: Item, verdict: Verdict, fix: str) -> Finding:
    rows = [labels for labels, _ in prom.query(f"max by ({_LABELS}) ({INFO_FAMILY}) == 1")]
    if not rows:
        return item.finding(Status.UNKNOWN, f"no {INFO_FAMILY} series in Prometheus", "instrument the services "
                            "with stackwatch.instrumentation and have Prometheus scrape their /metrics")
    judged: dict[str, tuple[Status, str]] = {}
    order = (Status.PASS, Status.WARN, Status.FAIL)
    for labels in rows:
        status, what = verdict(labels)
        job = labels.get("job", "?")
        if job not in judged or order.index(status) > order.index(judged[job][0]):
            judged[job] = (status, what)
    worst = max((status for status, _ in judged.values()), key=order.index)
    evidence = "; ".join(f"{job}: {what}" for job, (_, what) in sorted(judged.items()))
    return item.finding(worst, evidence, fix if worst != Status.PASS else "")


def _tracing(labels: dict[str, str]) -> tuple[Status, str]:
    if labels.get("tracing") != "true":
        return Status.FAIL, "tracing off (no request spans, or a sampler that keeps none)"
    exporter = labels.get("traces_exporter", "none")
    if exporter not in _EXPORTED:
        return Status.WARN, "request spans made but exported nowhere"
    return Status.PASS, _EXPORTED[exporter]


def _error_tracking(labels: dict[str, str]) -> tuple[Status, str]:
    tool = labels.get("error_tracking", "none")
    return (Status.FAIL, "no error tracking") if tool == "none" else (Status.PASS, f"errors reported to {tool}")


def _apm(labels: dict[str, str]) -> tuple[Status, str]:
    found = [f"{agent} agent" for agent in labels.get("apm", "none").split(",") if agent != "none"]
    exporter = labels.get("traces_exporter", "none")
    if labels.get("tracing") == "true" and exporter in _EXPORTED:
        found.append(_EXPORTED[exporter])
    return (Status.PASS, ", ".join(found)) if found else (Status.FAIL, "no APM agent and no traces exported")


def tracing_finding(prom: Prometheus) -> Finding:
    return _judge(prom, TRACING, _tracing, "keep traces on (STACKWATCH_TRACES, OTEL_TRACES_SAMPLER_ARG > 0) and "
                  "export them: OTEL_EXPORTER_OTLP_ENDPOINT=<the OpenTelemetry collector>")


def error_tracking_finding(prom: Prometheus) -> Finding:
    return _judge(prom, ERROR_TRACKING, _error_tracking, "set SENTRY_DSN: the instrumentation reports unhandled "
                  "errors and 5xx responses with the trace id")


def apm_finding(prom: Prometheus) -> Finding:
    return _judge(prom, APM, _apm, "export traces to an APM backend (OTEL_EXPORTER_OTLP_ENDPOINT: Tempo, Datadog "
                  "and New Relic all read OTLP), run its agent (ddtrace-run, newrelic-admin run-program), or turn "
                  "on Sentry performance (SENTRY_TRACES_SAMPLE_RATE)")
