"""``stackwatch_instrumentation_info``: what the instrumentation of a service has switched on.

The checklist's monitoring tools (distributed tracing, error tracking, an APM tool) are settings of
the service, invisible from outside: one info series per instrumented app says what they are, so
``stackwatch check`` (items ``app.tracing``, ``app.error_tracking``, ``app.apm``) can judge them from
Prometheus. Labels, each of a few values:

* ``tracing``: ``true`` when request spans are made and may be sampled (``false``: traces off,
  ``OTEL_SDK_DISABLED``, or a sampler that drops every trace);
* ``traces_exporter``: ``otlp`` when stackwatch's provider exports them, ``none`` when it exports
  them nowhere, ``service`` when they go to the service's own provider (its exporters are its own);
* ``error_tracking``: ``sentry`` when a Sentry client reports the service's errors, else ``none``;
* ``apm``: the APM agents found in the process, comma-separated (``datadog`` for ddtrace,
  ``newrelic``, ``sentry`` for Sentry performance tracing), else ``none``.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from .config import Settings
from .sentry import _service_client
from .tracing import built_exporter

__all__ = ["INFO_FAMILY", "InfoSeries", "instrumentation_info"]

INFO_FAMILY = "stackwatch_instrumentation_info"
_LABELS = ("service_name", "tracing", "traces_exporter", "error_tracking", "apm")
#: module an APM agent's launcher imports -> the agent's name
_AGENTS = {"ddtrace": "datadog", "newrelic.agent": "newrelic"}
_SAMPLES_NOTHING = ("always_off", "parentbased_always_off")


def instrumentation_info(settings: Settings, provider: Any, sentry: Any) -> dict[str, str]:
    """The label values for one instrumented app (``provider``: of its request spans, None when
    traces are off; ``sentry``: its SentryReporter or None)."""
    built = built_exporter(provider) if provider is not None else None
    ratio_zero = settings.sampler.endswith("traceidratio") and settings.sampler_arg == 0
    samples_nothing = built is not None and (settings.sampler in _SAMPLES_NOTHING or ratio_zero)
    tracing = provider is not None and not samples_nothing
    exporter = "none" if not tracing else built or "service"
    client = _sentry_client(sentry)
    agents = sorted(name for module, name in _AGENTS.items() if module in sys.modules)
    if client is not None and (client.options.get("traces_sampler") or client.options.get("traces_sample_rate")):
        agents.append("sentry")
    return {"service_name": settings.service_name, "tracing": str(tracing).lower(), "traces_exporter": exporter,
            "error_tracking": "sentry" if client is not None else "none", "apm": ",".join(agents) or "none"}


def _sentry_client(reporter: Any) -> Any:
    """The Sentry client reporting this app's errors: stackwatch's reporter's, else an active one
    the service initialised with Sentry's own framework integration (then there is no reporter)."""
    if reporter is not None:
        return reporter._client
    sdk = sys.modules.get("sentry_sdk")
    return None if sdk is None else _service_client(sdk)


class InfoSeries:
    """The info family of one registry; a label set stays while any app that set it is instrumented."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(INFO_FAMILY, "Monitoring tools the stackwatch instrumentation of the service has on "
                           "(value 1).", _LABELS, registry=registry, multiprocess_mode="livemax")
        self.owners: Counter[tuple[str, ...]] = Counter()

    def add(self, labels: dict[str, str]) -> None:
        key = tuple(labels[name] for name in _LABELS)
        self.owners[key] += 1
        self.gauge.labels(*key).set(1)

    def remove(self, labels: dict[str, str]) -> None:
        key = tuple(labels[name] for name in _LABELS)
        self.owners[key] -= 1
        if self.owners[key] <= 0:
            del self.owners[key]
            self.gauge.labels(*key).set(0)  # what a multiprocess file keeps after remove()
            self.gauge.remove(*key)
