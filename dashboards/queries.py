"""Every panel query of every dashboard, ready to run against a live Prometheus.

The end-to-end test (tests/e2e/) runs each one and expects it to parse and return data,
except the queries whose source documents why they may legitimately be empty
(``empty_reason``, e.g. replica-only metrics on a primary). Grafana's template variables are
replaced by :func:`substitute`: the dashboard variables by ``.*`` (what "All" means, since
every variable is used as ``label=~"$var"``), the interval macros by concrete durations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from .common import Query
from .generate import build_all

__all__ = ["PanelQuery", "panel_queries", "substitute", "DEFAULT_INTERVALS"]

#: Grafana's interval macros and the durations they stand for outside Grafana
DEFAULT_INTERVALS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


class PanelQuery(NamedTuple):
    """One target of one panel: ``(dashboard uid, panel title, expr)`` plus why it may be empty."""

    uid: str
    title: str
    expr: str
    empty_reason: str = ""


def panel_queries() -> Iterator[PanelQuery]:
    """Per dashboard its annotation queries (titled ``annotation: <name>``), then every target of
    every panel in panel order, with variables unreplaced."""
    for board in build_all():
        for annotation in board.annotations.list:
            yield PanelQuery(board.uid, f"annotation: {annotation['name']}", annotation["expr"])
        for panel in board.panels:
            for target in getattr(panel, "targets", []):
                reason = target.empty_reason if isinstance(target, Query) else ""
                yield PanelQuery(board.uid, panel.title, target.expr, reason)


def substitute(expr: str, values: Mapping[str, str] | None = None,
               intervals: Mapping[str, str] = DEFAULT_INTERVALS) -> str:
    """``expr`` with ``$var``/``${var}`` replaced: interval macros by ``intervals``, variables by
    ``values`` (default ``.*``, i.e. "All")."""
    chosen = values or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in intervals:
            return intervals[name]
        return chosen.get(name, ".*")

    return _VARIABLE.sub(replace, expr)
