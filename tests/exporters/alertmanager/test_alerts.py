"""The Alertmanager reader against a real Alertmanager: alerts posted through its API, one held by
a silence and one by an inhibition rule, counted by severity and state; bad URLs and servers that
are not (or no longer) there."""

from __future__ import annotations

import json
import logging
import time
import typing
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.rules import Severity
from stackwatch.core.options import OptionError
from stackwatch.exporters.alertmanager import KIND
from stackwatch.exporters.alertmanager.alerts import OTHER, SEVERITIES, STATES
from stackwatch.exporters.collector import Intervals
from stackwatch.exporters.kinds import Common
from stackwatch.exporters.target import Target
from tests.exporters.redis.collect import sample
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import AlertmanagerServer

FAST = Common(intervals=Intervals(fast=0.05, slow=0.05, rare=0.05))
CONFIG = {
    "route": {"receiver": "null", "group_by": ["alertname"]},
    "receivers": [{"name": "null"}],
    # a database that is down holds back its slow-queries alert (the mixins' pattern)
    "inhibit_rules": [{"source_matchers": ['alertname="DatabaseDown"'],
                       "target_matchers": ['alertname="SlowQueries"'], "equal": ["server"]}],
}


def _post(manager: AlertmanagerServer, path: str, body: Any) -> None:
    request = urllib.request.Request(f"{manager.url}/api/v2/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback fixture
        assert response.status == 200


def _alert(name: str, ends_in: timedelta = timedelta(hours=1), **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": name},
            "startsAt": (now - timedelta(minutes=5)).isoformat(), "endsAt": (now + ends_in).isoformat()}


def _target(url: str) -> Target[Any]:
    (target,) = KIND.targets({"alertmanager_url": [url], "alertmanager_timeout_seconds": 2.0}, FAST)
    return target


def _poll(target: Target[Any]) -> list[Any]:
    time.sleep(FAST.intervals.fast)
    target.refresh()
    return target.families()


def _counts(families: list[Any]) -> dict[tuple[str, str], float]:
    return {(severity, state): sample(families, "stackwatch_alertmanager_alerts", severity=severity, state=state)
            for severity in (*SEVERITIES, OTHER) for state in STATES}


def test_alerts_by_severity_and_state(alertmanager_factory: Callable[..., AlertmanagerServer]) -> None:
    manager = alertmanager_factory(CONFIG)
    target = _target(manager.url)
    families = _poll(target)
    assert sample(families, "stackwatch_alertmanager_up") == 1
    assert set(_counts(families).values()) == {0}  # nothing held: every pair reads 0, none is missing

    _post(manager, "alerts", [
        _alert("DatabaseDown", severity="critical", server="db1"),
        _alert("SlowQueries", severity="critical", server="db1"),      # inhibited by DatabaseDown
        _alert("SlowQueries", severity="critical", server="db2"),      # another server: pages
        _alert("PagerNoise", severity="critical"),                     # silenced below
        _alert("PagerNoise", severity="warning", team="web"),          # silenced too
        _alert("CacheCold", severity="warning"),
        _alert("Odd", severity="sev1"),                                # an unknown severity: other
        _alert("Unlabelled"),                                          # no severity: other
        _alert("Gone", ends_in=-timedelta(minutes=1), severity="critical"),  # resolved: not held
    ])
    now = datetime.now(UTC)
    _post(manager, "silences", {"matchers": [{"name": "alertname", "value": "PagerNoise", "isRegex": False,
                                              "isEqual": True}],
                                "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
                                "createdBy": "test", "comment": "maintenance"})
    expected = {("critical", "active"): 2, ("critical", "inhibited"): 1, ("critical", "silenced"): 1,
                ("warning", "active"): 1, ("warning", "silenced"): 1, (OTHER, "active"): 2}
    seen: dict[tuple[str, str], float] = {}

    def counted() -> bool:
        seen.update(_counts(_poll(target)))
        return {k: v for k, v in seen.items() if v} == expected

    wait_until(counted, 20, f"the counts {expected}, last {seen}")
    assert sample(target.families(), "stackwatch_alertmanager_scrape_collector_success", collector="alerts") == 1
    target.close()


def test_an_alertmanager_that_goes_away_reads_down_then_recovers(
        alertmanager_factory: Callable[..., AlertmanagerServer], caplog: pytest.LogCaptureFixture) -> None:
    manager = alertmanager_factory(CONFIG)
    url = manager.url.replace("http://", "http://watcher:hunter2secret@")  # sent as basic auth, never shown
    target = _target(url)
    assert sample(_poll(target), "stackwatch_alertmanager_up") == 1
    manager.stop()
    with caplog.at_level(logging.WARNING, logger="stackwatch.exporters"):
        families = _poll(target)
    assert sample(families, "stackwatch_alertmanager_up") == 0
    assert sample(families, "stackwatch_alertmanager_connection_error", reason="unreachable") == 1
    assert sample(families, "stackwatch_alertmanager_alerts", severity="critical", state="active") is None
    assert "hunter2secret" not in caplog.text and "down (unreachable)" in caplog.text
    manager.start()
    wait_until(lambda: sample(_poll(target), "stackwatch_alertmanager_up") == 1, 20, "the reader to reconnect")
    assert "hunter2secret" not in str(target.describe_target())
    target.close()


def test_a_server_that_is_not_an_alertmanager_is_said(alertmanager_factory: Callable[..., AlertmanagerServer]) -> None:
    manager = alertmanager_factory(CONFIG)
    families = _poll(_target(f"{manager.url}/no-such-prefix"))  # every API path answers 404
    assert sample(families, "stackwatch_alertmanager_up") == 0
    assert sample(families, "stackwatch_alertmanager_connection_error", reason="http_error") == 1


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://watcher:hunter2secret@alertmanager:9093", "scheme must be http:// or https://"),
    ("http://watcher:hunter2secret@:9093", "missing host"),
    ("http://watcher:hunter2secret@alertmanager:99999", "Port out of range"),
    ("http://watcher:hunter2secret@alertmanager:9093/?silenced=false", "give the base URL"),
])
def test_a_bad_url_is_refused_where_it_was_given_without_its_password(url: str, message: str) -> None:
    with pytest.raises(OptionError) as error:
        KIND.targets({"alertmanager_url": [url]}, Common())
    assert str(error.value).startswith("--alertmanager-url/$STACKWATCH_ALERTMANAGER_URL: ")
    assert message in str(error.value) and "hunter2secret" not in str(error.value)


def test_an_unreachable_port_reads_down(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stackwatch.exporters"):
        families = _poll(_target(f"http://u:hunter2secret@127.0.0.1:{free_port()}"))
    assert sample(families, "stackwatch_alertmanager_connection_error", reason="unreachable") == 1
    assert "hunter2secret" not in caplog.text


def test_the_severities_are_the_rules_own() -> None:
    assert SEVERITIES == typing.get_args(Severity)
