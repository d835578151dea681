"""``stackwatch_instrumentation_info`` says which monitoring tools an instrumented app has on,
read from what instrument() really set up (providers, exporters, Sentry clients)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from stackwatch.instrumentation import instrument, uninstrument

from .apps import make_app


def _info(registry: CollectorRegistry) -> list[dict[str, str]]:
    return [dict(sample.labels) for family in registry.collect() if family.name == "stackwatch_instrumentation_info"
            for sample in family.samples if sample.value == 1]


def _instrumented(registry: CollectorRegistry, **settings: Any) -> list[dict[str, str]]:
    app = make_app()
    instrument(app, registry=registry, environ={}, service_name="shop", **settings)
    try:
        return _info(registry)
    finally:
        uninstrument(app)


def test_traces_exported_over_otlp(registry: CollectorRegistry, otlp_receiver: Any) -> None:
    assert _instrumented(registry, otlp_endpoint=otlp_receiver.endpoint) == [
        {"service_name": "shop", "tracing": "true", "traces_exporter": "otlp", "error_tracking": "none", "apm": "none"}]
    assert _info(registry) == []  # uninstrument takes the series away


def test_spans_made_but_exported_nowhere(registry: CollectorRegistry) -> None:
    [info] = _instrumented(registry)
    assert (info["tracing"], info["traces_exporter"]) == ("true", "none")


@pytest.mark.parametrize("settings", [{"traces": False}, {"sampler": "always_off"},
                                      {"sampler": "parentbased_traceidratio", "sampler_arg": 0.0},
                                      {"sdk_disabled": True}])
def test_tracing_off_in_any_form(registry: CollectorRegistry, closed_port: int, settings: dict[str, Any]) -> None:
    [info] = _instrumented(registry, otlp_endpoint=f"http://127.0.0.1:{closed_port}", **settings)
    assert (info["tracing"], info["traces_exporter"]) == ("false", "none"), settings


def test_the_services_own_provider(registry: CollectorRegistry, provider: TracerProvider) -> None:
    app = make_app()
    instrument(app, registry=registry, environ={}, tracer_provider=provider)
    try:
        [info] = _info(registry)
    finally:
        uninstrument(app)
    assert (info["tracing"], info["traces_exporter"]) == ("true", "service")


def test_sentry_error_tracking_and_performance(registry: CollectorRegistry, sentry_receiver: Any) -> None:
    [plain] = _instrumented(registry, sentry_dsn=sentry_receiver.dsn)
    assert (plain["error_tracking"], plain["apm"]) == ("sentry", "none")
    [performance] = _instrumented(registry, sentry_dsn=sentry_receiver.dsn, sentry_traces_sample_rate=0.2)
    assert (performance["error_tracking"], performance["apm"]) == ("sentry", "sentry")


def test_apm_agents_loaded_in_the_process(registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    # what ddtrace-run and newrelic-admin run-program leave behind: their modules imported
    monkeypatch.setitem(sys.modules, "ddtrace", types.ModuleType("ddtrace"))
    monkeypatch.setitem(sys.modules, "newrelic.agent", types.ModuleType("newrelic.agent"))
    [info] = _instrumented(registry)
    assert info["apm"] == "datadog,newrelic"


def test_two_apps_with_the_same_tools_share_the_series(registry: CollectorRegistry) -> None:
    first, second = make_app(), make_app()
    instrument(first, registry=registry, environ={}, traces=False)
    instrument(second, registry=registry, environ={}, traces=False)
    uninstrument(first)
    assert len(_info(registry)) == 1  # still instrumented: second
    uninstrument(second)
    assert _info(registry) == []
