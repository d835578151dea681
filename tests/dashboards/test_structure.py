"""Structure of the generated dashboards: what Grafana needs to load them and what makes them useful.

Grafana is not available here, so these checks stand in for loading the JSON: ids, grid,
datasources resolvable through provisioning, units, variables, links and uids.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml
from grafanalib.core import Stat

from dashboards.common import NO_DATA_RED, PROMETHEUS_UID
from dashboards.generate import JSON_DIR, ROOT, build_all
from stackwatch.thresholds import DASHBOARD_UIDS

from .conftest import BOARDS

DATASOURCES_DIR = ROOT / "provisioning" / "grafana" / "datasources"
#: Grafana's built-in variables and interval macros
GRAFANA_MACROS = {"__rate_interval", "__interval", "__range", "__url_time_range", "__all_variables"}


def provisioned_datasource_uids() -> set[str]:
    uids = set()
    for path in DATASOURCES_DIR.glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            uids.add(source["uid"])
    return uids


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def content_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(board) if p["type"] != "row")


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``datasource`` object anywhere in the JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def test_every_dashboard_uid_is_generated_once() -> None:
    assert sorted(BOARDS) == sorted(DASHBOARD_UIDS.values())
    for name, board in BOARDS.items():
        assert board["uid"] == name, "file name and uid must agree (links use the uid)"
    assert len({b["title"] for b in BOARDS.values()}) == len(BOARDS)


def test_panel_ids_are_unique(board: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(board)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {board['uid']}"


def test_panels_fit_the_grid_without_overlapping(board: dict[str, Any]) -> None:
    boxes = []
    for panel in panels(board):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']!r} is wider than the grid"
        boxes.append((panel["title"], pos))
    for (title_a, a), (title_b, b) in combinations(boxes, 2):
        overlap = (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                   and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
        assert not overlap, f"{title_a!r} overlaps {title_b!r} in {board['uid']}"


def test_every_datasource_is_provisioned(board: dict[str, Any]) -> None:
    provisioned = provisioned_datasource_uids()
    assert PROMETHEUS_UID in provisioned
    defined = variables(board)
    refs = list(datasource_refs(board))
    assert refs, "panels must name their datasource"
    for ref in refs:
        uid = ref["uid"]
        match = re.fullmatch(r"\$\{(\w+)\}", uid)
        if match:
            variable = defined[match.group(1)]
            assert variable["type"] == "datasource" and variable["query"] == ref["type"]
            uid = variable["current"]["value"]
        assert uid in provisioned, f"datasource uid {uid!r} is not in provisioning/grafana/datasources"


def query_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Panels that query a datasource (Alert groups panels read Alertmanager's API instead)."""
    return (p for p in content_panels(board) if p["type"] != "alertGroups")


def test_every_panel_has_a_unit_and_a_description(board: dict[str, Any]) -> None:
    for panel in content_panels(board):
        assert panel.get("description"), f"{board['uid']}: panel {panel['title']!r} says no question it answers"
    for panel in query_panels(board):
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit, f"{board['uid']}: panel {panel['title']!r} has no unit"
        assert panel.get("description"), f"{board['uid']}: panel {panel['title']!r} says no question it answers"
        assert panel["targets"], f"{board['uid']}: panel {panel['title']!r} has no query"


def test_template_variables(board: dict[str, Any]) -> None:
    defined = variables(board)
    assert {"datasource", "job", "instance"} <= defined.keys()
    if board["uid"] == DASHBOARD_UIDS["service"]:
        assert "route" in defined
    for name, variable in defined.items():
        if variable["type"] == "query":
            assert variable["includeAll"] and variable["allValue"] == ".*", f"{name}: All must mean .*"
    exprs = [(panel["title"], t["expr"]) for panel in content_panels(board) for t in panel["targets"]]
    exprs += [(f"annotation {a['name']}", a["expr"]) for a in board["annotations"]["list"]]
    for title, expr in exprs:
        for name in re.findall(r"\$\{?(\w+)", expr):
            assert name in defined or name in GRAFANA_MACROS, f"{title!r} uses undefined ${name}"
            if name in defined:
                # multi-value variables expand to a|b: only a regex matcher is correct
                assert re.search(rf'=~"\${name}"', expr), f"{title!r}: ${name} must be used as label=~\"${name}\""


def test_firing_alerts_are_marked_on_every_graph(board: dict[str, Any]) -> None:
    """Each dashboard draws the firing alerts (warning and critical) as annotations on its graphs,
    from the datasource picked in $datasource."""
    (annotation,) = board["annotations"]["list"]
    assert annotation["enable"] and annotation["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert annotation["expr"].startswith("ALERTS{")
    assert 'alertstate="firing"' in annotation["expr"] and 'severity=~"critical|warning"' in annotation["expr"]
    assert annotation["titleFormat"] == "{{alertname}}"


def test_links_resolve(board: dict[str, Any]) -> None:
    urls = [link["url"] for link in board["links"]]
    urls += [link["url"] for panel in content_panels(board) for link in panel.get("links", [])]
    assert len(board["links"]) == len(DASHBOARD_UIDS) - 1, "every dashboard links to all the others"
    for url in urls:
        match = re.match(r"/d/([\w-]+)", url)
        assert match, f"link {url!r} is not a dashboard link"
        assert match.group(1) in BOARDS, f"link {url!r} names no generated dashboard"
    # drilling in keeps the time range and the variables (a PostgreSQL server picked stays picked)
    assert all(link["keepTime"] and link["includeVars"] for link in board["links"])
    for panel in content_panels(board):
        for link in panel.get("links", []):
            assert "${__url_time_range}" in link["url"] and "${__all_variables}" in link["url"], link["url"]


def test_latency_panels_request_exemplars() -> None:
    service = BOARDS[DASHBOARD_UIDS["service"]]
    exemplar_panels = [p for p in content_panels(service)
                       if any(t.get("exemplar") for t in p["targets"])]
    latency_panels = [p for p in content_panels(service) if p["type"] == "timeseries"
                      and any("http_server_request_duration_seconds" in t["expr"] for t in p["targets"])
                      and p["fieldConfig"]["defaults"]["unit"] == "s"]
    assert len(latency_panels) >= 3 and latency_panels == exemplar_panels, "every latency panel shows exemplars"
    for panel in exemplar_panels:
        assert panel["fieldConfig"]["defaults"]["unit"] == "s"
        # exemplars come from the raw histogram, never from a recording rule
        assert all("_bucket{" in t["expr"] for t in panel["targets"] if t.get("exemplar"))


def test_checklist_has_a_colored_stat_per_item() -> None:
    checklist = BOARDS[DASHBOARD_UIDS["checklist"]]
    stats = list(query_panels(checklist))
    assert len(stats) >= 20
    for panel in stats:
        assert panel["type"] == "stat" and panel["options"]["colorMode"] == "background"
        assert len(panel["fieldConfig"]["defaults"]["thresholds"]["steps"]) >= 2, panel["title"]
        assert panel["links"], f"{panel['title']!r} links to no dashboard"


def test_recorded_series_exist_in_the_rules() -> None:
    """Names with a colon are recording rules: alerts/rules must define each one."""
    recorded = set()
    for path in (ROOT / "alerts" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            recorded |= {rule["record"] for rule in group["rules"] if "record" in rule}
    used = {name for board in BOARDS.values() for panel in content_panels(board) for t in panel["targets"]
            for name in re.findall(r"[a-z_]+:[a-z0-9_:]+", t["expr"])}
    assert used, "the dashboards should reuse the recording rules"
    assert used <= recorded, f"not recorded by alerts/rules: {sorted(used - recorded)}"


def test_sources_type_no_threshold_numbers() -> None:
    """Principle 2: threshold values come from stackwatch.thresholds, so no float literal appears
    in a dashboard source (layout sizes are integers)."""
    for path in sorted((ROOT / "dashboards" / "src").glob("*.py")):
        tree = ast.parse(path.read_text())
        floats = [node.value for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, float)]
        assert floats == [], f"{path.name} types threshold-like numbers {floats}"


def test_json_dir_holds_only_dashboards() -> None:
    assert {p.suffix for p in Path(JSON_DIR).iterdir()} == {".json"}


def test_stats_show_now_and_a_required_one_without_data_is_red() -> None:
    """A range reduced with lastNotNull kept a vanished series' last value (a green hit ratio with the
    exporter down): stats are instant, and a required one that measures nothing reads red "no data"."""
    stats = [panel for board in build_all() for panel in board.panels if isinstance(panel, Stat)]
    assert len(stats) >= 30
    for panel in stats:
        data = panel.to_json_data()
        assert data["options"]["reduceOptions"]["calcs"] == ["last"], panel.title
        for target in panel.targets:
            rendered = target.to_json_data()
            assert rendered["instant"] and not rendered["range"], panel.title
            required = not target.empty_reason
            assert rendered["expr"] == (f"({target.expr}) or on() vector(NaN)" if required else target.expr)
            assert (NO_DATA_RED in data["fieldConfig"]["defaults"]["mappings"]) == required, panel.title


def test_headline_stats_follow_the_instance_picker() -> None:
    """The service dashboard's headline numbers read series recorded per instance too, so picking an
    instance narrows them (the per-service recordings made $instance silently do nothing)."""
    service = BOARDS[DASHBOARD_UIDS["service"]]
    stats = [p for p in content_panels(service) if p["type"] == "stat"]
    assert len(stats) >= 4
    for panel in stats:
        assert all('instance=~"$instance"' in t["expr"] for t in panel["targets"]), panel["title"]
