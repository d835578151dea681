"""Building blocks shared by every dashboard: datasource, variables, queries, panels, layout.

The dashboards are data built from these helpers so that each source file reads as a list of
questions and the PromQL that answers them. Conventions every panel follows (and
``tests/dashboards`` checks): the datasource is the ``$datasource`` variable, whose default is
the Prometheus uid provisioned in provisioning/grafana/datasources; every panel has a unit;
threshold steps come from :mod:`stackwatch.thresholds`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attr
from attr.validators import instance_of
from grafanalib.core import (
    Annotations,
    Dashboard,
    DashboardLink,
    GridPos,
    Panel,
    RowPanel,
    Stat,
    StatValueMappingItem,
    StatValueMappings,
    Table,
    TableSortByField,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

from stackwatch.thresholds import DASHBOARD_UIDS, SELECTORS

__all__ = [
    "ALERTMANAGER_DATASOURCE",
    "FIRING_ALERTS",
    "PROMETHEUS_UID",
    "AlertGroups",
    "DATASOURCE",
    "TITLES",
    "Query",
    "q",
    "Grid",
    "datasource_variable",
    "cluster_variable",
    "label_variable",
    "selector",
    "variable_label",
    "too_high",
    "too_low",
    "levels",
    "no_threshold",
    "timeseries",
    "stat",
    "table",
    "state_mapping",
    "dashboard",
    "dashboard_url",
]

#: the Prometheus datasource uid that provisioning/grafana/datasources/datasources.yml defines
PROMETHEUS_UID = "prometheus"
#: the Alertmanager datasource's name in provisioning/grafana/datasources (Grafana's alert panels
#: pick an Alertmanager by name)
ALERTMANAGER_DATASOURCE = "Alertmanager"
#: every panel and variable queries the datasource picked in the ``$datasource`` variable
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

#: dashboard titles by the keys of :data:`stackwatch.thresholds.DASHBOARD_UIDS`
TITLES = {
    "checklist": "Stackwatch / Checklist",
    "service": "Stackwatch / Service overview",
    "postgres": "Stackwatch / PostgreSQL",
    "redis": "Stackwatch / Redis",
    "processes": "Stackwatch / Processes",
    "jobs": "Stackwatch / Jobs",
    "host": "Stackwatch / Host",
}

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"


@attr.s
class Query(Target):
    """A Prometheus target with the fields grafanalib's ``Target`` lacks.

    ``exemplar`` asks Grafana to fetch exemplars (trace ids) alongside the series;
    ``empty_reason`` is not rendered: it documents why this query may legitimately return no
    series (e.g. replica-only metrics on a primary) for the end-to-end test.
    """

    exemplar: bool = attr.ib(default=False, validator=instance_of(bool))
    empty_reason: str = attr.ib(default="", validator=instance_of(str))
    #: render ``(expr) or on() vector(NaN)``: a required stat whose series vanished (exporter down,
    #: collector disabled) then shows NaN, which :data:`NO_DATA_RED` paints red
    nan_when_empty: bool = attr.ib(default=False, validator=instance_of(bool))

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["exemplar"] = self.exemplar
        data["range"] = not self.instant
        if self.nan_when_empty:
            data["expr"] = data["query"] = f"({self.expr}) or on() vector(NaN)"
        return data


@attr.s
class AlertGroups(Panel):
    """Grafana's Alert groups panel: the alerts an Alertmanager holds whose labels match ``labels``
    (``severity=~critical|warning``), grouped as Alertmanager notifies them, each with its state:
    active, or suppressed when a silence or an inhibition holds it back. Prometheus' ``ALERTS``
    cannot tell those apart; only Alertmanager knows its silences."""

    labels: str = attr.ib(default="", validator=instance_of(str))

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.panel_json({
            "type": "alertGroups",
            "options": {"alertmanager": ALERTMANAGER_DATASOURCE, "expandAll": True, "labels": self.labels},
        })
        return data


def _query(expr: str, legend: str, ref: str, **kwargs: Any) -> Query:
    return Query(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE, intervalFactor=1,
                 step=None, **kwargs)


def _targets(queries: Sequence[tuple[str, str] | Query]) -> list[Query]:
    """``(expr, legend)`` pairs (or prepared queries) as targets with refIds A, B, C..."""
    targets = []
    for index, item in enumerate(queries):
        ref = chr(ord("A") + index)
        if isinstance(item, Query):
            targets.append(attr.evolve(item, refId=ref))
        else:
            targets.append(_query(item[0], item[1], ref))
    return targets


def q(expr: str, legend: str = "", **kwargs: Any) -> Query:
    """A query with options (``exemplar=True``, ``instant=True``, ``empty_reason=...``)."""
    return _query(expr, legend, "A", **kwargs)


# ---------------------------------------------------------------------------- variables

def datasource_variable() -> Template:
    """``$datasource``: any Prometheus, defaulting to the provisioned one."""
    return Template(name="datasource", label="Data source", type="datasource", query="prometheus",
                    default=PROMETHEUS_UID, refresh=1)


def cluster_variable() -> Template:
    """``$cluster``: the cluster label's values (``SELECTORS.cluster_label``), "All" by default.

    "All" is ``.*``, which also matches series without the label, so one Prometheus without it
    shows everything. Hidden unless ``SELECTORS.multi_cluster`` (the mixins' showMultiCluster):
    Grafana cannot hide a variable by its number of values, so the setting says it.
    """
    return Template(name="cluster", label="cluster", query=f"label_values(up, {SELECTORS.cluster_label})",
                    dataSource=DATASOURCE, includeAll=True, multi=False, allValue=".*", refresh=2, sort=1,
                    default="$__all", hide=0 if SELECTORS.multi_cluster else 2)


def label_variable(name: str, label: str, metric: str, *, parents: Sequence[str] = ()) -> Template:
    """A multi-value ``$name`` listing the values of ``label`` on ``metric``; "All" is ``.*``.

    ``parents`` are the variables this one is filtered by (``instance`` by ``job``...); every
    one is filtered by ``$cluster``.
    """
    query = f"label_values({metric}{{{selector(*parents)}}}, {label})"
    variable = Template(name=name, label=name, query=query, dataSource=DATASOURCE,
                        includeAll=True, multi=True, allValue=".*", refresh=2, sort=1)
    # grafanalib derives `current` from `default` as a single value; a multi-value variable
    # starting at "All" needs the list form, which it has no argument for.
    variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def variable_label(name: str) -> str:
    """The label a dashboard variable filters: its own name, except ``route`` (``http_route``) and
    ``cluster`` (the cluster label of the settings)."""
    return {"route": "http_route", "cluster": SELECTORS.cluster_label}.get(name, name)


def selector(*variables: str, **fixed: str) -> str:
    """A label matcher list: the ``$cluster`` variable and each of ``variables`` as
    ``label=~"$name"`` on :func:`variable_label`, then fixed ``label="value"`` pairs."""
    parts = [f'{variable_label(v)}=~"${v}"' for v in ("cluster", *variables)]
    parts += [f'{k}="{v}"' for k, v in fixed.items()]
    return ",".join(parts)


# ---------------------------------------------------------------------------- thresholds
# Grafana colors a value with the last step at or below it. The thresholds module says a
# "too high" threshold is crossed when the value is strictly above it: that equals "at or
# above" for any measured float except zero ("any at all"), whose step starts just above 0.

def _step_at(threshold: float) -> float:
    return threshold if threshold != 0 else math.ulp(0.0)


def too_high(threshold: float) -> list[dict[str, Any]]:
    """Green below, red above ``threshold`` (connections, latency, errors...)."""
    return [{"color": GREEN, "value": None}, {"color": RED, "value": _step_at(threshold)}]


def too_low(threshold: float) -> list[dict[str, Any]]:
    """Red below, green at or above ``threshold`` (hit ratios)."""
    return [{"color": RED, "value": None}, {"color": GREEN, "value": threshold}]


def levels(warning: float, critical: float) -> list[dict[str, Any]]:
    """Green, orange from ``warning``, red from ``critical``."""
    return [{"color": GREEN, "value": None}, {"color": ORANGE, "value": _step_at(warning)},
            {"color": RED, "value": _step_at(critical)}]


def no_threshold() -> list[dict[str, Any]]:
    """A single base step: the panel has no checklist threshold."""
    return [{"color": BLUE, "value": None}]


# ---------------------------------------------------------------------------- panels

def timeseries(title: str, description: str, queries: Sequence[tuple[str, str] | Query], unit: str, *,
               thresholds: list[dict[str, Any]] | None = None, stacked: bool = False,
               min_zero: bool = True, **kwargs: Any) -> TimeSeries:
    """A time series; with ``thresholds`` the steps are drawn as dashed lines."""
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries), unit=unit,
        thresholds=thresholds or no_threshold(), thresholdsStyleMode="dashed" if thresholds else "off",
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none", "group": "A"},
        fillOpacity=20 if stacked else 10, lineWidth=1, showPoints="never", spanNulls=True,
        valueMin=0 if min_zero else None, legendDisplayMode="list", tooltipMode="multi",
        tooltipSort="desc", maxDataPoints=None, **kwargs)


def state_mapping(ok_value: int, ok_text: str, bad_text: str) -> list[StatValueMappings]:
    """Show 0/1 metrics as words, colored green for ``ok_value`` and red otherwise."""
    bad_value = 1 - ok_value
    return [StatValueMappings(StatValueMappingItem(ok_text, str(ok_value), GREEN),
                              StatValueMappingItem(bad_text, str(bad_value), RED))]


#: a required stat that measures nothing is blind, not fine: red "no data" (see Query.nan_when_empty)
NO_DATA_RED: dict[str, Any] = {"type": "special",
                               "options": {"match": "null+nan", "result": {"text": "no data", "color": RED}}}


def stat(title: str, description: str, expr: str | Query, unit: str, thresholds: list[dict[str, Any]], *,
         links: Sequence[str] = (), no_value: str = "no data", **kwargs: Any) -> Stat:
    """One number colored by ``thresholds``; ``links`` are dashboard keys to drill into.

    The query is instant (what is true now: a range reduced with lastNotNull kept showing a
    vanished series' last value), and unless it may legitimately be empty (``empty_reason``) no
    data shows as a red "no data".
    """
    query = expr if isinstance(expr, Query) else q(expr)
    required = not query.empty_reason
    query = attr.evolve(query, instant=True, nan_when_empty=required)
    kwargs.setdefault("textMode", "value")
    kwargs["mappings"] = [*kwargs.get("mappings", []), *([NO_DATA_RED] if required else [])]
    return Stat(
        title=title, description=description, dataSource=DATASOURCE, targets=_targets([query]), format=unit,
        thresholds=thresholds, color={"mode": "thresholds"}, colorMode="background", graphMode="none",
        reduceCalc="last", noValue=no_value, maxDataPoints=None,
        # the time range and every variable travel along: drilling in keeps the job, instance, server
        links=[{"title": TITLES[key], "url": dashboard_url(key) + "?${__url_time_range}&${__all_variables}"}
               for key in links],
        **kwargs)


def table(title: str, description: str, queries: Sequence[Query], unit: str, *,
          columns: dict[str, tuple[str, str]], hidden: Sequence[str] = (),
          sort_by: str | None = None) -> Table:
    """An instant table joining ``queries`` on their labels.

    ``columns`` maps a field (``Value #A`` or a label) to ``(display name, unit)``; the merge
    and organize transformations give one row per label set with those columns.
    """
    overrides = [{"matcher": {"id": "byName", "options": field},
                  "properties": [{"id": "unit", "value": col_unit}, {"id": "displayName", "value": name}]}
                 for field, (name, col_unit) in columns.items()]
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True, **{h: True for h in hidden}},
                                       "indexByName": {}, "renameByName": {}}},
    ]
    sort = [] if sort_by is None else [TableSortByField(displayName=columns[sort_by][0], desc=True)]
    return Table(title=title, description=description, dataSource=DATASOURCE, unit=unit,
                 targets=_targets([attr.evolve(x, instant=True, format="table") for x in queries]),
                 overrides=overrides, transformations=transformations, sortBy=sort, filterable=True,
                 maxDataPoints=None,
                 thresholds=no_threshold())


# ---------------------------------------------------------------------------- layout

class Grid:
    """Places panels left to right in Grafana's 24-column grid, wrapping lines, with rows."""

    WIDTH = 24

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self._x = 0
        self._y = 0
        self._line_height = 0

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def row(self, title: str) -> Grid:
        """A full-width row header starting a new line."""
        self._newline()
        self.panels.append(RowPanel(title=title, gridPos=GridPos(h=1, w=self.WIDTH, x=0, y=self._y)))
        self._y += 1
        return self

    def add(self, panel: Panel, w: int, h: int = 8) -> Grid:
        if self._x + w > self.WIDTH:
            self._newline()
        self.panels.append(attr.evolve(panel, gridPos=GridPos(h=h, w=w, x=self._x, y=self._y)))
        self._x += w
        self._line_height = max(self._line_height, h)
        return self


# ---------------------------------------------------------------------------- dashboards

def dashboard_url(key: str) -> str:
    """Grafana's path of the dashboard ``key`` (its fixed uid)."""
    return f"/d/{DASHBOARD_UIDS[key]}"


def _links(current: str) -> list[DashboardLink]:
    return [DashboardLink(title=TITLES[key].split(" / ")[-1], type="link", uri=dashboard_url(key),
                          icon="dashboard", keepTime=True, includeVars=True, tooltip=TITLES[key])
            for key in TITLES if key != current]


#: the alerts that need someone, as Prometheus evaluates them: marked on every graph
FIRING_ALERTS = f'ALERTS{{{selector("job", alertstate="firing")},severity=~"critical|warning"}}'


def _firing_alerts() -> dict[str, Any]:
    """An annotation per firing alert on every graph: when it started, next to the curve that
    explains it (narrowed by ``$cluster`` and ``$job``; alerts without those labels show under All)."""
    return {"name": "Firing alerts", "datasource": DATASOURCE, "enable": True, "hide": False,
            "iconColor": RED, "expr": FIRING_ALERTS, "step": "1m", "titleFormat": "{{alertname}}",
            "textFormat": "{{severity}} {{job}} {{instance}} {{server}}", "tagKeys": "severity",
            "useValueForTime": False}


def dashboard(key: str, description: str, grid: Grid, variables: Sequence[Template]) -> Dashboard:
    """The dashboard ``key`` with its fixed uid, links to the others, numbered panels and the
    firing alerts as annotations."""
    return Dashboard(
        title=TITLES[key], uid=DASHBOARD_UIDS[key], description=description, tags=["stackwatch"],
        panels=grid.panels, templating=Templating(list=[datasource_variable(), cluster_variable(), *variables]),
        annotations=Annotations(list=[_firing_alerts()]),
        links=_links(key), time=Time("now-1h", "now"), refresh="30s", schemaVersion=39,
        timezone="browser", graphTooltip=1, editable=True,
    ).auto_panel_ids()
