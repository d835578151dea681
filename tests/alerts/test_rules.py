"""Every committed alert carries what the design requires, and its links lead somewhere real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackwatch.instrumentation.metrics import HTTP_DURATION_BUCKETS
from stackwatch.thresholds import (
    DASHBOARD_UIDS,
    FOR,
    GRAFANA_BASE_URL,
    RUNBOOK_BASE_URL,
)
from tests.alerts.cases import alert_rules
from tests.fixtures.prometheus import REPO_ROOT, RULES_DIR

RULES = alert_rules()
SEVERITIES = {"critical", "warning", "info", "none"}
ANNOTATIONS = {"summary", "description", "runbook_url", "dashboard_url"}


def _github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"(?m)^#{1,6}\s+(.+?)\s*$", markdown):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("key", sorted(RULES), ids="/".join)
def test_alert_has_for_severity_and_annotations(key: tuple[str, str]) -> None:
    rule = RULES[key]
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
    assert set(rule["labels"]) == {"severity"} and rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) == ANNOTATIONS
    assert all(text.strip() for text in rule["annotations"].values())


#: the folder RUNBOOK_BASE_URL publishes
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"


@pytest.mark.parametrize("key", sorted(RULES), ids="/".join)
def test_runbook_url_points_at_an_existing_section(key: tuple[str, str]) -> None:
    url = RULES[key]["annotations"]["runbook_url"]
    assert url.startswith(RUNBOOK_BASE_URL + "/") and url.startswith("https://")
    page, _, anchor = url[len(RUNBOOK_BASE_URL) + 1:].partition("#")
    path = RUNBOOKS / page
    assert path.is_file(), f"{key[0]}: runbook page {path} is missing"
    assert anchor == key[0].lower()
    assert anchor in _github_anchors(path.read_text(encoding="utf-8")), f"no '## {key[0]}' in {path}"


@pytest.mark.parametrize("key", sorted(RULES), ids="/".join)
def test_dashboard_url_points_at_a_known_dashboard_uid(key: tuple[str, str]) -> None:
    url = RULES[key]["annotations"]["dashboard_url"]
    assert url.startswith(f"{GRAFANA_BASE_URL}/d/")
    assert url.split("/d/", 1)[1].split("?", 1)[0] in DASHBOARD_UIDS.values()


def test_every_for_duration_is_used_by_an_alert() -> None:
    used = {rule["for"] for rule in RULES.values()}
    assert set(vars(FOR).values()) <= used
    assert len(vars(FOR)) == len(RULES), "one for-duration per alerting rule"


def test_runbook_sections_have_alerts() -> None:
    """No stale runbook section: every alert heading names an alert that exists."""
    names = {name.lower() for name, _ in RULES}
    for path in sorted(RUNBOOKS.glob("*.md")):
        for heading in re.findall(r"(?m)^## (\S+)\s*$", path.read_text(encoding="utf-8")):
            assert heading.lower() in names, f"{path.name}: section {heading} has no alert"


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.yml")), ids=lambda p: p.name)
def test_rules_avoid_what_prometheus_2_42_or_3_lack(path: Path) -> None:
    """The rules must load on Prometheus 2.42 (tested here) and on 3.x (the compose image)."""
    text = path.read_text(encoding="utf-8")
    assert "keep_firing_for" not in text  # 2.42 lacks it
    assert "holt_winters" not in text  # renamed in 3.0
    # 3.x normalises le="1" to le="1.0": an exact le matcher misses one side, a regex must take both
    assert not re.search(r"\ble\s*=\s*\"", text)
    for quoted in re.findall(r"\ble\s*=~\s*\"((?:[^\"\\\\]|\\\\.)*)\"", text):
        pattern = quoted.replace("\\\\", "\\")
        boundaries = [b for b in HTTP_DURATION_BUCKETS if re.fullmatch(pattern, repr(float(b)))]
        assert boundaries, f"le=~{quoted!r} matches no bucket boundary"
        for boundary in boundaries:
            go_spelling = repr(float(boundary)).removesuffix(".0")
            assert re.fullmatch(pattern, go_spelling), f"le=~{quoted!r} misses the spelling {go_spelling!r}"
    assert not re.search(r"\{\s*\"", text)  # quoted UTF-8 metric names are 3.x only
    assert "limit_ratio(" not in text and "limitk(" not in text  # experimental in 3.x, absent in 2.42
