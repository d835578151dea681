"""promtool accepts the committed rules, and their unit tests pass and would catch regressions.

The unit tests live in alerts/tests/*.test.yml. Beyond running them, every alerting rule is
mutated twice to show its cases assert something: silenced, its firing cases must fail; made to
fire always, its quiet cases must fail.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.cases import (
    TEST_FILES,
    Evaluation,
    RuleKey,
    alert_rules,
    evaluations,
    failed_evaluations,
    run_subset,
)
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


def _batches() -> list[list[RuleKey]]:
    """Rules to mutate together: distinct alert names, as each promtool case checks one name.

    A failed case then points at the one mutated rule of its name (the two severities of
    PostgresConnectionsSaturated land in different batches).
    """
    by_name: dict[str, list[RuleKey]] = {}
    for key in ALERTS:
        by_name.setdefault(key[0], []).append(key)
    depth = max(map(len, by_name.values()))
    return [[keys[i] for keys in by_name.values() if i < len(keys)] for i in range(depth)]


def _mutate(keys: list[RuleKey], expr: str, for_: str | None) -> Callable[[dict[str, Any]], None]:
    def mutate(rule: dict[str, Any]) -> None:
        if (rule["alert"], rule["labels"]["severity"]) in keys:
            rule["expr"] = expr
            if for_ is not None:
                rule["for"] = for_
    return mutate


#: silenced (never fires): its firing cases must fail; always firing at once: its quiet cases must
MUTATIONS: dict[str, tuple[str, str | None, Callable[[Evaluation, RuleKey], bool]]] = {
    "silenced": ("vector(1) < 0", None, Evaluation.fires),
    "always_firing": ("vector(1)", "0m", Evaluation.quiet),
}


@pytest.fixture(scope="module")
def caught(promtool: str, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, RuleKey], set[Any]]:
    """(mutation, rule) -> the cases promtool reported failing once that rule was mutated.

    Every case first runs once through the same subsetting unmutated and must pass (a case the
    subsetting broke would fail under any mutation and look caught); then each (mutation, batch)
    runs mutated. The runs are independent, so they go side by side, one per core.
    """
    runs = []
    for name, (expr, for_, selects) in MUTATIONS.items():
        for batch in _batches():
            keys = [k for k in batch if name == "silenced" or k not in ALWAYS_FIRING]

            def keep(e: Evaluation, keys: list[RuleKey] = keys, selects: Any = selects) -> bool:
                return any(selects(e, k) for k in keys)

            runs.append((name, keys, tmp_path_factory.mktemp(name), keep, _mutate(keys, expr, for_)))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        baseline = pool.submit(run_subset, promtool, tmp_path_factory.mktemp("baseline"), lambda e: True)
        mutated = [pool.submit(run_subset, promtool, root, keep, mutate) for _, _, root, keep, mutate in runs]
        done = baseline.result()
        assert done.returncode == 0, done.stdout + done.stderr
        results: dict[tuple[str, RuleKey], set[Any]] = {}
        for (name, keys, *_), changed in zip(runs, mutated):
            failed = failed_evaluations(changed.result().stdout + changed.result().stderr)
            results.update({(name, key): failed for key in keys})
    return results


@pytest.mark.parametrize("key", ALERTS, ids="/".join)
def test_firing_cases_catch_a_silenced_alert(caught: dict[tuple[str, RuleKey], set[Any]], key: RuleKey) -> None:
    cases = {e.where for e in evaluations() if e.fires(key)}
    assert cases and cases <= caught[("silenced", key)]


@pytest.mark.parametrize("key", [k for k in ALERTS if k not in ALWAYS_FIRING], ids="/".join)
def test_quiet_cases_catch_an_always_firing_alert(caught: dict[tuple[str, RuleKey], set[Any]],
                                                  key: RuleKey) -> None:
    cases = {e.where for e in evaluations() if e.quiet(key)}
    assert cases and cases <= caught[("always_firing", key)]
