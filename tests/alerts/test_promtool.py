"""promtool accepts the committed rules, and their unit tests pass and would catch regressions.

The unit tests live in alerts/tests/*.test.yml. Beyond running them, every alerting rule is
mutated twice to show its cases assert something: silenced, its firing cases must fail; made to
fire always, its quiet cases must fail.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.cases import TEST_FILES, RuleKey, alert_rules, run_subset
from tests.fixtures.prometheus import RULES_DIR

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
ALERTS = sorted(alert_rules())
#: the dead man's switch fires unconditionally: it has no quiet case by design
ALWAYS_FIRING = {("Watchdog", "none")}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=120)


def test_check_rules_accepts_every_rule_file(promtool: str) -> None:
    result = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", result.stdout))
    assert found == sum(len(group["rules"]) for path in RULE_FILES
                        for group in yaml.safe_load(path.read_text())["groups"])
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_unit_tests_pass(promtool: str, test_file: Path) -> None:
    result = _run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _silence(key: RuleKey):
    def mutate(rule: dict[str, Any]) -> None:
        if (rule["alert"], rule["labels"]["severity"]) == key:
            rule["expr"] = "vector(1) < 0"
    return mutate


def _always_fire(key: RuleKey):
    def mutate(rule: dict[str, Any]) -> None:
        if (rule["alert"], rule["labels"]["severity"]) == key:
            rule["expr"], rule["for"] = "vector(1)", "0m"
    return mutate


@pytest.mark.parametrize("key", ALERTS, ids="/".join)
def test_firing_cases_catch_a_silenced_alert(promtool: str, tmp_path: Path, key: RuleKey) -> None:
    baseline = run_subset(promtool, tmp_path / "baseline", lambda e: e.fires(key))
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    mutated = run_subset(promtool, tmp_path / "mutated", lambda e: e.fires(key), _silence(key))
    assert mutated.returncode != 0
    assert f"alertname: {key[0]}," in mutated.stdout + mutated.stderr


@pytest.mark.parametrize("key", [k for k in ALERTS if k not in ALWAYS_FIRING], ids="/".join)
def test_quiet_cases_catch_an_always_firing_alert(promtool: str, tmp_path: Path, key: RuleKey) -> None:
    baseline = run_subset(promtool, tmp_path / "baseline", lambda e: e.quiet(key))
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    mutated = run_subset(promtool, tmp_path / "mutated", lambda e: e.quiet(key), _always_fire(key))
    assert mutated.returncode != 0
    assert f"alertname: {key[0]}," in mutated.stdout + mutated.stderr
