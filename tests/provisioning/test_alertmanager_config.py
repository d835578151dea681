"""provisioning/alertmanager: amtool accepts it, routes by severity, and entrypoint.sh renders the
webhook URL from the environment into a config a real Alertmanager runs."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import AlertmanagerServer

from .conftest import PROVISIONING, load_yaml, services

CONFIG = PROVISIONING / "alertmanager" / "alertmanager.yml"
ENTRYPOINT = PROVISIONING / "alertmanager" / "entrypoint.sh"
PLACEHOLDER = "http://alertmanager-webhook.invalid/"


def test_amtool_checks_the_config(amtool: str) -> None:
    result = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=Watchdog", "severity=none"], "null"),
    (["alertname=PostgresDown", "severity=critical"], "webhook-critical"),
    (["alertname=PostgresConnectionsSaturated", "severity=warning"], "webhook"),
    (["alertname=PostgresUnusedIndex", "severity=info"], "webhook"),
    # the demo's deliberate faults notify nobody; the same alerts on its other routes, or on
    # another service's same route, still do
    (["alertname=HttpErrorRatioHigh", "severity=warning", "job=demo", "http_route=/error"], "null"),
    (["alertname=NPlusOneQueriesDetected", "severity=warning", "job=demo",
      "http_route=/authors/{author_id}/books"], "null"),
    (["alertname=HttpErrorRatioHigh", "severity=warning", "job=demo", "http_route=/books"], "webhook"),
    (["alertname=HttpErrorRatioHigh", "severity=warning", "job=shop", "http_route=/error"], "webhook"),
    (["alertname=ServiceDown", "severity=critical", "job=demo"], "webhook-critical"),
])
def test_routes_by_severity(amtool: str, labels: list[str], receiver: str) -> None:
    result = subprocess.run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


def test_critical_inhibits_warning_of_the_same_alert_and_target() -> None:
    rule = load_yaml(CONFIG)["inhibit_rules"][0]
    assert rule["source_matchers"] == ['severity = "critical"']
    assert rule["target_matchers"] == ['severity = "warning"']
    assert sorted(rule["equal"]) == ["alertname", "cluster", "instance", "job", "server"]


def test_critical_on_one_server_does_not_silence_another_servers_warning(alertmanager_binary: str) -> None:
    """One exporter instance watches several databases (targets file, /probe): each is its own; so
    is the same-named server of another cluster."""
    common = {"alertname": "PostgresConnectionsSaturated", "job": "stackwatch-exporter",
              "instance": "stackwatch-exporter:9188"}
    alerts = [{"labels": {**common, "severity": severity, "server": server}}
              for severity, server in (("critical", "db-a"), ("warning", "db-a"), ("warning", "db-b"))]
    alerts.append({"labels": {**common, "severity": "warning", "server": "db-a", "cluster": "us"}})
    with AlertmanagerServer(CONFIG, alertmanager_binary) as am:
        request = urllib.request.Request(f"{am.url}/api/v2/alerts", json.dumps(alerts).encode(),
                                         {"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=10).close()

        def states() -> dict[tuple[str, str], str]:
            return {(a["labels"]["severity"], a["labels"].get("cluster", "") + a["labels"]["server"]):
                    a["status"]["state"] for a in am.alerts()}

        wait_until(lambda: len(states()) == 4 and states()[("warning", "db-a")] == "suppressed", 30,
                   "the inhibition of db-a's warning")
        assert states() == {("critical", "db-a"): "active", ("warning", "db-a"): "suppressed",
                            ("warning", "db-b"): "active", ("warning", "usdb-a"): "active"}


def test_a_down_dependency_pages_once_not_again_per_service_health_check(alertmanager_binary: str) -> None:
    """RedisDown holds back the services' failing redis checks; an unrelated failing check still pages."""
    alerts = [
        {"labels": {"alertname": "RedisDown", "severity": "critical", "job": "stackwatch-exporter",
                    "instance": "stackwatch-exporter:9188", "server": "redis:6379"}},
        {"labels": {"alertname": "HealthCheckFailing", "severity": "critical", "job": "demo", "check": "redis"}},
        {"labels": {"alertname": "HealthCheckFailing", "severity": "critical", "job": "demo", "check": "payments"}},
        # the same service in another cluster, whose Redis is up
        {"labels": {"alertname": "HealthCheckFailing", "severity": "critical", "job": "demo", "check": "redis",
                    "cluster": "us"}},
    ]
    with AlertmanagerServer(CONFIG, alertmanager_binary) as am:
        request = urllib.request.Request(f"{am.url}/api/v2/alerts", json.dumps(alerts).encode(),
                                         {"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=10).close()

        def states() -> dict[str, str]:
            return {a["labels"].get("cluster", "") + a["labels"].get("check", a["labels"]["alertname"]):
                    a["status"]["state"] for a in am.alerts()}

        wait_until(lambda: len(states()) == 4 and states()["redis"] == "suppressed", 30,
                   "the inhibition of the redis health check")
        assert states() == {"RedisDown": "active", "redis": "suppressed", "payments": "active", "usredis": "active"}


def test_every_webhook_uses_the_placeholder_the_entrypoint_replaces() -> None:
    urls = [hook["url"] for receiver in load_yaml(CONFIG)["receivers"]
            for hook in receiver.get("webhook_configs", [])]
    assert urls and set(urls) == {PLACEHOLDER}
    assert PLACEHOLDER in ENTRYPOINT.read_text()
    compose = services()["alertmanager"]
    assert compose["entrypoint"] == ["/bin/sh", "/etc/alertmanager/entrypoint.sh"]
    assert "ALERTMANAGER_WEBHOOK_URL" in compose["environment"]


def _run_entrypoint(alertmanager_binary: str, tmp_path: Path, url: str | None) -> tuple[str, str]:
    """Start Alertmanager through entrypoint.sh; return (the config it loaded, stderr)."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "ALERTMANAGER_CONFIG": str(CONFIG), "ALERTMANAGER_DATA": str(tmp_path),
           "ALERTMANAGER_BIN": alertmanager_binary}
    if url is not None:
        env["ALERTMANAGER_WEBHOOK_URL"] = url
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(["sh", str(ENTRYPOINT), f"--web.listen-address=127.0.0.1:{port}",
                                    "--cluster.listen-address=", "--log.level=warn"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        status: dict[str, object] = {}

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/status", timeout=2) as answer:
                status.update(json.load(answer))
            return True

        wait_until(ready, 30, "Alertmanager started by entrypoint.sh")
        return str(status["config"]["original"]), log.read_text()  # type: ignore[index]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_entrypoint_renders_the_webhook_url(alertmanager_binary: str, tmp_path: Path) -> None:
    url = "https://hooks.example.com/alerts?token=a&b=c|d"
    loaded, _ = _run_entrypoint(alertmanager_binary, tmp_path, url)
    assert loaded.count(url) == 2 and PLACEHOLDER not in loaded
    assert PLACEHOLDER in CONFIG.read_text(), "the mounted original must stay untouched"


def test_entrypoint_without_url_warns_and_keeps_the_placeholder(alertmanager_binary: str, tmp_path: Path) -> None:
    loaded, stderr = _run_entrypoint(alertmanager_binary, tmp_path, None)
    assert PLACEHOLDER in loaded
    assert "ALERTMANAGER_WEBHOOK_URL is not set" in stderr
