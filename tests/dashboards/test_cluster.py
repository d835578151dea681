"""Every dashboard has a ``$cluster`` variable and every series it reads is filtered by it.

Parsed with an independent PromQL parser, so a new panel whose query escapes ``selector()``
fails here: on a store shared by several clusters it would mix their series.
"""

from __future__ import annotations

import re
from typing import Any

import promql_parser

from stackwatch.thresholds import SELECTORS
from tests.dashboards.test_structure import content_panels, variables


def _unfiltered_selectors(expr: str) -> list[str]:
    """Vector selectors of ``expr`` (Grafana's macros replaced) without ``cluster=~"$cluster"``."""
    expr = re.sub(r"\$__\w+", "5m", expr)
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(expr), found.append, None)
    unfiltered = []
    for node in found:
        if isinstance(node, promql_parser.VectorSelector):
            if not any(m.name == SELECTORS.cluster_label and m.value == "$cluster" for m in node.matchers.matchers):
                unfiltered.append(str(node.name))
    return unfiltered


def test_every_panel_query_is_filtered_by_cluster(board: dict[str, Any]) -> None:
    problems = [f"{panel['title']!r}: {name}" for panel in content_panels(board) for target in panel["targets"]
                for name in _unfiltered_selectors(target["expr"])]
    assert problems == []


def test_the_cluster_variable_filters_the_others_and_hides_on_one_cluster(board: dict[str, Any]) -> None:
    defined = variables(board)
    cluster = defined["cluster"]
    assert list(defined)[:2] == ["datasource", "cluster"]
    assert cluster["query"] == f"label_values(up, {SELECTORS.cluster_label})"
    # "All" matches series without the label too: a Prometheus that has none shows everything
    assert cluster["includeAll"] and cluster["allValue"] == ".*" and cluster["current"]["value"] == "$__all"
    assert cluster["hide"] == (0 if SELECTORS.multi_cluster else 2)
    for name, variable in defined.items():
        if variable["type"] == "query" and name != "cluster":
            assert f'{SELECTORS.cluster_label}=~"$cluster"' in variable["query"], name


def test_the_scan_catches_an_unfiltered_query() -> None:
    assert _unfiltered_selectors('sum(rate(x{job=~"$job"}[$__rate_interval])) / y{cluster=~"$cluster"}') == ["x"]
