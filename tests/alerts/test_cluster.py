"""Every generated rule keeps the cluster label, and counter alerts are safe on MetricsQL engines.

The rule files are parsed with an independent PromQL parser (promql-parser), not with the
rewriter that adds the label, so a new rule whose grouping escapes the rewriter fails here. The
promtool cases in alerts/tests/cluster.test.yml show two clusters that share names stay apart;
the other test files (no cluster label anywhere) show unlabelled series aggregate as before.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from alerts.cluster import keep_label
from stackwatch.thresholds import SELECTORS
from tests.alerts.cases import duration_seconds
from tests.fixtures.prometheus import REPO_ROOT, RULES_DIR

LABEL = SELECTORS.cluster_label


def _rules() -> Iterator[dict[str, Any]]:
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            yield from group["rules"]


RULES = list(_rules())


def _name(rule: dict[str, Any]) -> str:
    return str(rule.get("alert") or rule["record"])


def _nodes(expr: str) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(expr), found.append, None)
    return found


def merging_groupings(expr: str, label: str) -> list[str]:
    """The aggregations and vector matches of ``expr`` that would merge values of ``label``."""
    problems = []
    for node in _nodes(expr):
        if isinstance(node, promql_parser.AggregateExpr):
            modifier = node.modifier
            if modifier is None:
                problems.append(f"{node.op} without by ({label})")
            elif modifier.type == promql_parser.AggModifierType.By and label not in modifier.labels:
                problems.append(f"{node.op} by ({', '.join(modifier.labels)})")
            elif modifier.type == promql_parser.AggModifierType.Without and label in modifier.labels:
                problems.append(f"{node.op} without ({label})")
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier and node.modifier.matching:
            matching = node.modifier.matching
            on = matching.type == promql_parser.LabelModifierType.Include
            # on () on purpose means "whatever the labels"; ignoring () keeps every label
            if on and matching.labels and label not in matching.labels:
                problems.append(f"on ({', '.join(matching.labels)})")
            if not on and label in matching.labels:
                problems.append(f"ignoring ({label})")
    return problems


@pytest.mark.parametrize("rule", RULES, ids=_name)
def test_every_grouping_keeps_the_cluster_label(rule: dict[str, Any]) -> None:
    assert merging_groupings(rule["expr"], LABEL) == []


def test_the_scan_catches_what_merges_clusters() -> None:
    assert merging_groupings('sum(rate(x[5m])) / on (job) max by (job) (y) > 1', "cluster") == [
        "on (job)", "sum without by (cluster)", "max by (job)"]
    assert merging_groupings('x or on () vector(0)', "cluster") == []


@pytest.mark.parametrize(("expr", "expected"), [
    ("sum by (job) (x)", "sum by (cluster, job) (x)"),
    ("sum(x) by (job)", "sum(x) by (cluster, job)"),
    ("count(x)", "count by (cluster)(x)"),
    ("topk(3, x)", "topk by (cluster)(3, x)"),
    ("max without (reason) (x)", "max without (reason) (x)"),
    ("a and on (job) b", "a and on (cluster, job) b"),
    ("a and on (cluster, job) b", "a and on (cluster, job) b"),
    ("a or on () vector(0)", "a or on () vector(0)"),
    ("a / ignoring (quantile) b", "a / ignoring (quantile) b"),
    ('x{route=~"sum(by (a))"}', 'x{route=~"sum(by (a))"}'),
    ("max_over_time(x[1h]) and on (job) count_values by (v) (\"v\", y)",
     "max_over_time(x[1h]) and on (cluster, job) count_values by (cluster, v) (\"v\", y)"),
])
def test_keep_label_rewrites_groupings_only(expr: str, expected: str) -> None:
    assert keep_label(expr, "cluster") == expected
    assert merging_groupings(keep_label(expr, "cluster"), "cluster") == []


def test_the_cluster_label_is_a_setting(tmp_path: Path) -> None:
    """``[selectors] cluster_label`` in STACKWATCH_THRESHOLDS_FILE renames it in every rule."""
    overrides = tmp_path / "thresholds.toml"
    overrides.write_text('[selectors]\ncluster_label = "region"\n', encoding="utf-8")
    code = ("from alerts.generate import render_files, RECORDING_FILE, ALERTING_FILE\n"
            "files = render_files()\nprint(files[RECORDING_FILE] + files[ALERTING_FILE])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, check=False, env={**os.environ, "STACKWATCH_THRESHOLDS_FILE": str(overrides)})
    assert result.returncode == 0, result.stderr
    exprs = re.findall(r"(?m)^    expr: (.+)$", result.stdout)
    assert len(exprs) == len(RULES)
    assert all(merging_groupings(expr, "region") == [] for expr in exprs)
    assert "by (region, job)" in result.stdout and "by (cluster" not in result.stdout


#: functions whose value on a series' first samples differs on VictoriaMetrics, which counts a new
#: series' first value as an increase
_COUNTER_FUNCTIONS = {"increase", "rate", "irate"}


def _unsettled_counters(expr: str, for_seconds: float) -> list[str]:
    """Counters ``expr`` takes increase()/rate() of where ``for`` is too short to outlast the
    first-sample window, and no ``and <counter> offset <window>`` guard leaves a new series out
    (one guard covers the counters of a ratio: they are born together)."""
    guards = set(re.findall(r"\band\s+([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+offset\s", expr))
    counters = []
    for node in _nodes(expr):
        if not (isinstance(node, promql_parser.Call) and node.func.name in _COUNTER_FUNCTIONS):
            continue
        matrix = node.args[-1]
        name = matrix.vector_selector.name if isinstance(matrix, promql_parser.MatrixSelector) else None
        if name is None or ":" in name:
            continue  # a recording rule is no raw counter
        window = matrix.range.total_seconds()
        if for_seconds < window:
            counters.append((f"{node.func.name}({name}[{window:g}s])", name))
    if guards & {name for _, name in counters}:
        return []
    unguarded = [call for call, _ in counters]
    return unguarded


@pytest.mark.parametrize("rule", [r for r in RULES if "alert" in r], ids=_name)
def test_counter_alerts_ignore_a_series_first_samples(rule: dict[str, Any]) -> None:
    """As `_settled_increase` guards PostgresDeadlocks: unguarded, an alert whose ``for`` is
    shorter than its window fires on VictoriaMetrics each time a counter with history appears."""
    assert _unsettled_counters(rule["expr"], duration_seconds(rule["for"])) == []


def test_the_counter_scan_catches_an_unguarded_increase() -> None:
    assert _unsettled_counters("increase(x_total[10m]) > 0", 0) == ["increase(x_total[600s])"]
    assert _unsettled_counters("(increase(x_total[10m]) and x_total offset 10m) > 0", 0) == []
    assert _unsettled_counters("rate(x_total[5m]) > 0", 600) == []
