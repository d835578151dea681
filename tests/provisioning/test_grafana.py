"""Grafana provisioning: datasources linked both ways and the dashboards where compose mounts them."""

from __future__ import annotations

import re
from pathlib import Path

from dashboards.common import PROMETHEUS_UID

from .conftest import PROVISIONING, ROOT, load_yaml, services

DATASOURCES = PROVISIONING / "grafana" / "datasources" / "datasources.yml"
PROVIDER = PROVISIONING / "grafana" / "dashboards" / "stackwatch.yml"


def by_type() -> dict[str, dict]:
    return {source["type"]: source for source in load_yaml(DATASOURCES)["datasources"]}


def test_prometheus_links_exemplars_to_the_trace_store() -> None:
    sources = by_type()
    prometheus = sources["prometheus"]
    assert prometheus["uid"] == PROMETHEUS_UID and prometheus["isDefault"]
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id", "the instrumentation's exemplar label"
    assert destination["datasourceUid"] == sources["tempo"]["uid"]


def test_the_default_user_can_follow_an_exemplar_to_its_trace() -> None:
    """Clicking an exemplar opens its trace in Explore, which Grafana only offers to Editors: the
    demo's anonymous Viewer may use Explore (viewers_can_edit) without being able to save."""
    environment = services()["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_USERS_VIEWERS_CAN_EDIT"] == "true"


def test_traces_link_back_to_metrics() -> None:
    sources = by_type()
    link = sources["tempo"]["jsonData"]["tracesToMetrics"]
    assert link["datasourceUid"] == PROMETHEUS_UID
    assert all("http_server_request_duration_seconds" in query["query"] for query in link["queries"])


def test_alertmanager_datasource() -> None:
    assert by_type()["alertmanager"]["jsonData"]["implementation"] == "prometheus"


def test_dollar_signs_are_escaped_for_grafana() -> None:
    """Grafana expands $VAR in provisioning files: a literal $ must be written $$."""
    text = DATASOURCES.read_text()
    assert not re.search(r"(?<!\$)\$(?!\$)", text.replace("$$", ""))


def test_dashboard_provider_reads_the_mounted_json() -> None:
    (provider,) = load_yaml(PROVIDER)["providers"]
    assert provider["type"] == "file" and provider["folder"]
    mounts = dict(v.split(":")[:2][::-1] for v in services()["grafana"]["volumes"])
    source = mounts[provider["options"]["path"]]
    assert Path(ROOT / source).resolve() == (ROOT / "dashboards" / "json").resolve()
    home = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards" / "json" / Path(home).name).exists()
    assert mounts["/etc/grafana/provisioning/datasources"] == "./provisioning/grafana/datasources"
