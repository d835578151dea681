"""Building blocks of the rule catalog: recording rules, alerts, groups, and how they render.

A rule is data (a frozen dataclass); rendering turns it into the mapping Prometheus loads, with
the cluster label kept through every grouping (:mod:`alerts.cluster`). The
annotation helpers produce Go template snippets so that the catalog reads like prose and every
threshold in a text comes from :mod:`stackwatch.thresholds`, never a retyped number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from stackwatch.thresholds import SELECTORS

from .cluster import keep_label

__all__ = [
    "VALUE",
    "Alert",
    "Group",
    "Record",
    "Severity",
    "duration",
    "label",
    "num",
    "percent",
    "runbook_anchor",
    "value_as",
]

Severity = Literal["critical", "warning", "info", "none"]


def label(name: str) -> str:
    """The template snippet printing label ``name`` of the alerting series."""
    return "{{ $labels." + name + " }}"


#: the template snippet printing the alert expression's value as is
VALUE = "{{ $value }}"


def value_as(function: str) -> str:
    """The value piped through a Prometheus template function (humanizePercentage, ...)."""
    return "{{ $value | " + function + " }}"


def num(x: float) -> str:
    """A PromQL literal: integers without a trailing ``.0``, floats exactly as Python prints them."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def percent(ratio: float) -> str:
    """0.8 -> ``80%`` for texts."""
    return f"{ratio * 100:g}%"


def duration(seconds: float) -> str:
    """300 -> ``5m``, 0.25 -> ``250ms`` for texts."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size_s in (("h", 3600), ("m", 60)):
        if seconds % size_s == 0:
            return f"{seconds // size_s:g}{unit}"
    return f"{seconds:g}s"


def runbook_anchor(alert_name: str) -> str:
    """The GitHub anchor of the runbook heading ``## <alert_name>``."""
    return alert_name.lower()


@dataclass(frozen=True)
class Record:
    """A recording rule; ``labels`` are added to every series it writes."""

    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)
    #: one line for docs/alerts.md
    meaning: str = ""

    def render(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"record": self.record, "expr": keep_label(self.expr, SELECTORS.cluster_label)}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


@dataclass(frozen=True)
class Alert:
    """An alerting rule with the annotations every stackwatch alert carries."""

    alert: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    #: stem of the runbook page under the runbook base (``postgres`` -> postgres.md)
    runbook: str
    #: key of ``stackwatch.thresholds.DASHBOARD_UIDS``
    dashboard: str
    #: the threshold in words for docs/alerts.md (``> 80%``)
    threshold: str
    #: what the expression means, one line for docs/alerts.md
    meaning: str

    def runbook_url(self, base: str) -> str:
        return f"{base}/{self.runbook}.md#{runbook_anchor(self.alert)}"

    def render(self, runbook_base: str, dashboard_urls: dict[str, str]) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": keep_label(self.expr, SELECTORS.cluster_label),
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": self.runbook_url(runbook_base),
                "dashboard_url": dashboard_urls[self.dashboard],
            },
        }


@dataclass(frozen=True)
class Group:
    """A rule group: Prometheus evaluates its rules in order, so records may use earlier ones."""

    name: str
    rules: tuple[Record | Alert, ...]
