"""The committed rules in a real Prometheus 2.42, and an alert delivered to a real Alertmanager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.catalog import GROUPS
from stackwatch.thresholds import GRAFANA_BASE_URL, RUNBOOK_BASE_URL
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import (
    RULES_DIR,
    AlertmanagerServer,
    PrometheusServer,
    copy_rules,
)

FAST = {"scrape_interval": "1s", "evaluation_interval": "1s"}


def test_prometheus_loads_and_evaluates_every_rule(prometheus_factory: Callable[..., PrometheusServer]) -> None:
    prometheus = prometheus_factory({"global": FAST}, rules_dir=RULES_DIR)

    def evaluated() -> bool:
        rules = [rule for group in prometheus.rule_groups() for rule in group["rules"]]
        return all(not rule["lastEvaluation"].startswith("0001") for rule in rules)

    wait_until(evaluated, 30, "every rule to be evaluated once")
    groups = prometheus.rule_groups()
    assert {g["name"]: len(g["rules"]) for g in groups} == {g.name: len(g.rules) for g in GROUPS}
    broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not broken
    firing = {a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"}
    assert "Watchdog" in firing


def test_exporter_down_reaches_alertmanager(tmp_path: Path,
                                            prometheus_factory: Callable[..., PrometheusServer],
                                            alertmanager_factory: Callable[..., AlertmanagerServer]) -> None:
    alertmanager = alertmanager_factory({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there: the scrape fails, up == 0
    config = {
        "global": FAST,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]},
        "scrape_configs": [{"job_name": "stackwatch-exporter", "static_configs": [{"targets": [closed]}]}],
    }
    rules = copy_rules(tmp_path / "rules", for_duration="0s")
    assert "for: 0s" in (rules / "alerts.yml").read_text() and "for: 2m" not in (rules / "alerts.yml").read_text()
    # Alerts that fire before the notifier has discovered Alertmanager wait for the next resend.
    prometheus_factory(config, rules_dir=rules, extra_args=["--rules.alert.resend-delay=1s"])

    def delivered() -> dict[str, dict[str, Any]]:
        return {alert["labels"]["alertname"]: alert for alert in alertmanager.alerts()}

    wait_until(lambda: {"StackwatchExporterDown", "Watchdog"} <= set(delivered()), 60,
               "StackwatchExporterDown and Watchdog in Alertmanager")
    alert = delivered()["StackwatchExporterDown"]
    assert alert["labels"] == {"alertname": "StackwatchExporterDown", "severity": "critical",
                               "job": "stackwatch-exporter", "instance": closed}
    assert alert["annotations"]["summary"] == f"The stackwatch exporter {closed} cannot be scraped"
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE_URL}/stackwatch.md#stackwatchexporterdown"
    # the Checklist is the overview: it opens unfiltered
    assert alert["annotations"]["dashboard_url"] == f"{GRAFANA_BASE_URL}/d/stackwatch-checklist?orgId=1"
    assert delivered()["Watchdog"]["labels"] == {"alertname": "Watchdog", "severity": "none"}
