"""The committed rule files and promtool unit tests, read as data for the coverage tests.

An alerting rule is identified by ``(alertname, severity)``: the two levels of an alert share a
name (so that Alertmanager's critical-inhibits-warning rule can match on ``alertname``).
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.prometheus import REPO_ROOT, RULES_DIR

__all__ = [
    "TESTS_DIR",
    "TEST_FILES",
    "Evaluation",
    "RuleKey",
    "alert_rules",
    "duration_seconds",
    "evaluations",
    "failed_evaluations",
    "recording_rules",
    "run_subset",
]

TESTS_DIR = REPO_ROOT / "alerts" / "tests"
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))

RuleKey = tuple[str, str]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in _load(path)["groups"]:
        yield from group["rules"]


def alert_rules() -> dict[RuleKey, dict[str, Any]]:
    """Every committed alerting rule by (alertname, severity)."""
    rules = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for rule in _rules(path):
            if "alert" in rule:
                key = (rule["alert"], rule["labels"]["severity"])
                assert key not in rules, f"two rules are {key}"
                rules[key] = rule
    return rules


def recording_rules() -> set[str]:
    return {rule["record"] for path in sorted(RULES_DIR.glob("*.yml")) for rule in _rules(path) if "record" in rule}


@dataclass(frozen=True)
class Evaluation:
    """One ``alert_rule_test`` entry: at ``eval_time``, ``alertname`` fires with these severities."""

    file: Path
    group: int
    index: int
    alertname: str
    eval_time: str
    severities: frozenset[str]

    @property
    def where(self) -> tuple[str, float]:
        """How promtool's failure report names this evaluation: alert and time."""
        return self.alertname, duration_seconds(self.eval_time)

    def fires(self, key: RuleKey) -> bool:
        return self.alertname == key[0] and key[1] in self.severities

    def quiet(self, key: RuleKey) -> bool:
        return self.alertname == key[0] and key[1] not in self.severities


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``1h11m``, ``90s``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def failed_evaluations(report: str) -> set[tuple[str, float]]:
    """The (alert, eval time) of every failed alert_rule_test in promtool's report.

    (Failures go to stderr and file headers to stdout, so the file cannot be told reliably.)
    """
    return {(name, duration_seconds(time)) for name, time in re.findall(r"alertname: (\w+), time: (\w+),", report)}


@functools.cache
def evaluations() -> tuple[Evaluation, ...]:
    """Every ``alert_rule_test`` entry of the committed test files (read once: parsing them takes
    a quarter of a second, and each parametrized case asks)."""
    found = []
    for path in TEST_FILES:
        for g, group in enumerate(_load(path)["tests"]):
            for i, test in enumerate(group.get("alert_rule_test") or []):
                severities = frozenset(a["exp_labels"]["severity"] for a in test.get("exp_alerts") or [])
                found.append(Evaluation(path, g, i, test["alertname"], test["eval_time"], severities))
    return tuple(found)


def _referenced(name: str, expr: str) -> bool:
    """Whether PromQL ``expr`` names the series ``name`` (a recording rule's colons included)."""
    return re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr) is not None


def _recorded_for(rules: list[dict[str, Any]], alertnames: set[str]) -> set[str]:
    """The recording rules the alerting rules named ``alertnames`` read, transitively.

    promtool evaluates every rule at every step of a test, so a run checking a few alerts spends
    most of its time on rules nobody looks at. Alerts never read one another (no ``ALERTS`` or
    ``ALERTS_FOR_STATE`` series in the kept rules, and no ``__name__`` matcher that matches a
    recording rule: asserted), so dropping the others changes nothing the kept cases see.
    """
    exprs = [str(r["expr"]) for r in rules if r.get("alert") in alertnames]
    recorded: set[str] = set()
    while True:
        found = {r["record"] for r in rules if "record" in r and r["record"] not in recorded
                 and any(_referenced(r["record"], e) for e in exprs)}
        if not found:
            break
        recorded |= found
        exprs += [str(r["expr"]) for r in rules if r.get("record") in found]
    # ALERTS / ALERTS_FOR_STATE would read the dropped alerts; a __name__ matcher could read a recording rule
    names = [r["record"] for r in rules if "record" in r]
    matched = [n for e in exprs for pattern in re.findall(r'__name__\s*=~\s*"([^"]*)"', e) for n in names
               if re.fullmatch(pattern, n)]
    assert not any("ALERTS" in e for e in exprs) and not matched, f"a kept rule reads ALERTS or {matched}"
    return recorded


def run_subset(promtool: str, root: Path, keep: Callable[[Evaluation], bool],
               mutate: Callable[[dict[str, Any]], None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool on only the evaluations ``keep`` selects, against rules changed by ``mutate``.

    Each test file gets its own copy of the rule files under ``root/<file>/rules``, with only
    the rules its selected evaluations need (:func:`_recorded_for`; ``mutate`` edits each alerting rule
    in place first), and goes to ``root/<file>/tests``, so its relative ``rule_files`` resolve to
    that copy.
    """
    rule_docs = {path.name: _load(path) for path in sorted(RULES_DIR.glob("*.yml"))}
    for doc in rule_docs.values():
        for group in doc["groups"]:
            for rule in group["rules"]:
                if mutate is not None and "alert" in rule:
                    mutate(rule)
    selected = [e for e in evaluations() if keep(e)]
    assert selected, "no evaluation selected"
    files = []
    for path in sorted({e.file for e in selected}):
        doc = _load(path)
        groups = []
        for g, group in enumerate(doc["tests"]):
            tests = [t for i, t in enumerate(group.get("alert_rule_test") or [])
                     if any(e.file == path and e.group == g and e.index == i for e in selected)]
            if tests:
                group = copy.deepcopy(group)
                group.pop("promql_expr_test", None)
                group["alert_rule_test"] = tests
                groups.append(group)
        doc["tests"] = groups
        here = root / path.name.removesuffix(".test.yml")
        (here / "rules").mkdir(parents=True)
        (here / "tests").mkdir()
        names = {e.alertname for e in selected if e.file == path}
        recorded = _recorded_for([r for d in rule_docs.values() for g in d["groups"] for r in g["rules"]], names)
        for name, rules_doc in rule_docs.items():
            pruned = copy.deepcopy(rules_doc)
            for group in pruned["groups"]:
                group["rules"] = [r for r in group["rules"] if r.get("alert") in names or r.get("record") in recorded]
            (here / "rules" / name).write_text(yaml.safe_dump(pruned, sort_keys=False), encoding="utf-8")
        target = here / "tests" / path.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        files.append(str(target))
    return subprocess.run([promtool, "test", "rules", *files], capture_output=True, text=True, check=False, timeout=600)
