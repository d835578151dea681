"""The Checklist's alert panels read Alertmanager, the one place that knows silences and inhibitions.

Prometheus' ``ALERTS`` counts a silenced or inhibited critical alert as firing (the old "critical
alerts firing" stat did), so the panels list what Alertmanager holds, as Grafana's Alert groups
panel fetches it (``/api/v2/alerts/groups``, filtered by the panel's labels): here, against a real
Alertmanager with the repository's alertmanager.yml, a silence and its inhibit rules.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from dashboards.common import ALERTMANAGER_DATASOURCE
from dashboards.generate import ROOT
from tests.e2e.stack import alertmanager_config
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import AlertmanagerServer

from .conftest import BOARDS
from .test_structure import content_panels


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        text = response.read()
    return json.loads(text) if text else None


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"labels": {"alertname": name, "severity": severity, "job": "stackwatch-exporter",
                       "instance": "exporter:9188", **labels},
            "annotations": {}, "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}


def _panel_filter(labels: str) -> Callable[[dict[str, str]], bool]:
    """The Alert groups panel's ``labels`` option (``name=value`` pairs) as a predicate."""
    pairs = [pair.split("=", 1) for pair in labels.split(",")]
    return lambda alert_labels: all(alert_labels.get(name) == value for name, value in pairs)


def test_alert_panels_read_the_provisioned_alertmanager() -> None:
    checklist = BOARDS["stackwatch-checklist"]
    panels = [p for p in content_panels(checklist) if p["type"] == "alertGroups"]
    assert [p["options"]["labels"] for p in panels] == ["severity=critical", "severity=warning"]
    sources = {s["name"]: s for path in (ROOT / "provisioning" / "grafana" / "datasources").glob("*.yml")
               for s in yaml.safe_load(path.read_text())["datasources"]}
    assert sources[ALERTMANAGER_DATASOURCE]["type"] == "alertmanager"
    assert all(p["options"]["alertmanager"] == ALERTMANAGER_DATASOURCE for p in panels)


def test_silenced_and_inhibited_critical_alerts_are_not_shown_as_paging(
        alertmanager_factory: Callable[..., AlertmanagerServer]) -> None:
    manager = alertmanager_factory(alertmanager_config(f"http://127.0.0.1:{free_port()}/"))
    api = f"{manager.url}/api/v2"
    now = datetime.now(UTC)
    _post(f"{api}/silences", {
        "matchers": [{"name": "alertname", "value": "RedisDown", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "test", "comment": "maintenance"})
    _post(f"{api}/alerts", [
        _alert("PostgresDown", "critical", server="main"),
        _alert("PostgresConnectionsSaturated", "critical", server="orders"),
        # inhibited by its critical twin (same alertname, job, instance, server)
        _alert("PostgresConnectionsSaturated", "warning", server="orders"),
        # silenced
        _alert("RedisDown", "critical", server="cache"),
        # inhibited while PostgresDown pages for the cause
        _alert("HealthCheckFailing", "critical", job="demo", instance="demo:8000", check="database"),
    ])

    def states(labels: str) -> dict[str, str]:
        with urllib.request.urlopen(f"{api}/alerts/groups", timeout=10) as response:  # noqa: S310
            groups = json.load(response)
        wanted = _panel_filter(labels)
        return {a["labels"]["alertname"]: a["status"]["state"] for g in groups for a in g["alerts"]
                if wanted(a["labels"])}

    expected_critical = {"PostgresDown": "active", "PostgresConnectionsSaturated": "active",
                         "RedisDown": "suppressed", "HealthCheckFailing": "suppressed"}
    wait_until(lambda: states("severity=critical") == expected_critical, 15, "silence and inhibitions applied",
               interval=0.2)
    assert states("severity=warning") == {"PostgresConnectionsSaturated": "suppressed"}
    # what pages is what Alertmanager holds active: 2, where Prometheus' ALERTS counts 4 critical
    assert sum(state == "active" for state in states("severity=critical").values()) == 2
