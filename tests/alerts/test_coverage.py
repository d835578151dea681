"""Every alerting rule has a promtool case where it fires and one where it stays quiet; every
recording rule's value is checked; the tests name no rule that does not exist."""

from __future__ import annotations

import yaml

from tests.alerts.cases import TEST_FILES, alert_rules, evaluations, recording_rules

ALWAYS_FIRING = {("Watchdog", "none")}


def test_every_alert_fires_in_some_case() -> None:
    cases = evaluations()
    missing = [key for key in alert_rules() if not any(e.fires(key) for e in cases)]
    assert not missing, f"alerts without a firing case: {missing}"


def test_every_alert_stays_quiet_in_some_case() -> None:
    cases = evaluations()
    missing = [key for key in alert_rules() if key not in ALWAYS_FIRING and not any(e.quiet(key) for e in cases)]
    assert not missing, f"alerts without a quiet case: {missing}"


def test_the_only_alert_without_a_quiet_case_is_an_unconditional_watchdog() -> None:
    rules = alert_rules()
    for key in ALWAYS_FIRING:
        assert rules[key]["expr"] == "vector(1)"


def test_cases_name_only_existing_alerts_and_severities() -> None:
    names = {name for name, _ in alert_rules()}
    known = {severity for _, severity in alert_rules()}
    for case in evaluations():
        assert case.alertname in names, f"{case.file.name}: unknown alert {case.alertname}"
        assert case.severities <= known


def test_every_recording_rule_value_is_checked() -> None:
    exprs = [test["expr"] for path in TEST_FILES for group in yaml.safe_load(path.read_text())["tests"]
             for test in group.get("promql_expr_test") or []]
    unchecked = [name for name in recording_rules() if not any(name in expr for expr in exprs)]
    assert not unchecked, f"recording rules no promql_expr_test evaluates: {unchecked}"
