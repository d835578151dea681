"""The committed rule files and alert table are exactly what the catalog generates (principle 3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerts import generate
from alerts.catalog import alerts, slo_problems
from stackwatch.instrumentation.metrics import HTTP_DURATION_BUCKETS
from stackwatch.thresholds import OVERRIDES_ENV, POSTGRES, SLOS, ServiceSlo
from tests.fixtures.prometheus import REPO_ROOT

FILES = generate.render_files()


@pytest.mark.parametrize("rel", sorted(FILES))
def test_committed_file_matches_the_catalog(rel: str) -> None:
    committed = (REPO_ROOT / rel).read_text(encoding="utf-8")
    assert committed == FILES[rel], f"{rel} drifted from alerts/catalog.py: run `python -m alerts.generate`"


def test_check_mode_passes_on_the_repository_and_fails_on_drift(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "alerts.generate", "--check"]
    clean = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert clean.returncode == 0, clean.stderr

    assert generate.write_files(tmp_path, FILES) == list(FILES)
    drifted = tmp_path / generate.ALERTING_FILE
    drifted.write_text(drifted.read_text().replace("> 0.95", "> 0.96"))
    check = subprocess.run([*command, "--root", str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                           timeout=60)
    assert check.returncode == 1
    assert generate.ALERTING_FILE in check.stderr and generate.RECORDING_FILE not in check.stderr


def test_write_reports_only_changed_files(tmp_path: Path) -> None:
    generate.write_files(tmp_path, FILES)
    assert generate.write_files(tmp_path, FILES) == []


def test_thresholds_reach_the_rules() -> None:
    """A rule's number is the thresholds module's, not a retyped copy."""
    doc = yaml.safe_load(FILES[generate.ALERTING_FILE])
    exprs = {(r["alert"], r["labels"]["severity"]): r["expr"] for g in doc["groups"] for r in g["rules"]}
    assert exprs[("PostgresConnectionsSaturated", "critical")].endswith(
        f"> {POSTGRES.connection_saturation_critical}")
    assert f"> {POSTGRES.slow_statement_mean_seconds}" in exprs[("PostgresSlowStatements", "warning")]


def test_links_follow_the_base_urls() -> None:
    files = generate.render_files("https://example.org/runbooks/", "https://grafana.example.org/")
    doc = yaml.safe_load(files[generate.ALERTING_FILE])
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert rules[0]["annotations"]["runbook_url"].startswith("https://example.org/runbooks/stackwatch.md#")
    assert all(r["annotations"]["dashboard_url"].startswith("https://grafana.example.org/d/stackwatch-")
               for r in rules)


def test_dashboard_links_carry_the_alerts_labels_as_variables() -> None:
    """Each variable of the linked dashboard is set from the alert's label of that name, when the
    alert has it (an empty ``var-`` would select nothing); promtool cases assert the rendered URLs."""
    urls = generate.dashboard_urls("https://grafana.example.org")
    assert urls["postgres"] == (
        "https://grafana.example.org/d/stackwatch-postgres?orgId=1"
        "{{ with $labels.cluster }}&var-cluster={{ . | urlquery }}{{ end }}"
        "{{ with $labels.job }}&var-job={{ . | urlquery }}{{ end }}"
        "{{ with $labels.instance }}&var-instance={{ . | urlquery }}{{ end }}"
        "{{ with $labels.server }}&var-server={{ . | urlquery }}{{ end }}")
    assert "{{ with $labels.http_route }}&var-route={{ . | urlquery }}{{ end }}" in urls["service"]
    # the overview opens whole: narrowed to Prometheus' job its other items would read "no data"
    assert urls["checklist"] == "https://grafana.example.org/d/stackwatch-checklist?orgId=1"


@pytest.mark.parametrize("bad", ["docs/runbooks", "ftp://example.org/runbooks", "https://"])
def test_relative_link_bases_are_refused(bad: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert generate.main(["--root", str(tmp_path), "--runbook-base-url", bad]) == 2
    err = capsys.readouterr().err
    assert f"runbook_base_url={bad!r} is not an absolute http(s) URL" in err and "Traceback" not in err
    assert generate.main(["--root", str(tmp_path), "--grafana-url", bad]) == 2
    assert f"grafana_base_url={bad!r}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_link_bases_come_from_the_overrides_file(tmp_path: Path) -> None:
    """STACKWATCH_THRESHOLDS_FILE sets the deployment's addresses without editing the thresholds."""
    overrides = tmp_path / "ours.toml"
    overrides.write_text('runbook_base_url = "https://git.example.com/ops/stackwatch/blob/main/docs/runbooks"\n'
                         'grafana_base_url = "https://grafana.example.com/"\n')
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "alerts.generate", "--root", str(out)], cwd=REPO_ROOT,
                          env={**os.environ, OVERRIDES_ENV: str(overrides)}, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load((out / generate.ALERTING_FILE).read_text())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r["alert"] == "PostgresDown")
    assert rule["annotations"]["runbook_url"] == \
        "https://git.example.com/ops/stackwatch/blob/main/docs/runbooks/postgres.md#postgresdown"
    assert rule["annotations"]["dashboard_url"].startswith("https://grafana.example.com/d/stackwatch-postgres?orgId=1")


def test_alert_table_lists_every_alert() -> None:
    table = FILES[generate.DOCS_FILE]
    for alert in alerts():
        assert f"| `{alert.alert}` | {alert.severity} | {alert.for_} |" in table


def test_slo_latency_targets_must_be_bucket_boundaries() -> None:
    assert slo_problems(SLOS, HTTP_DURATION_BUCKETS) == []
    problems = slo_problems((ServiceSlo(jobs="checkout", latency_seconds=0.3), ServiceSlo(availability=1.0)),
                            HTTP_DURATION_BUCKETS)
    assert problems == [
        "SLO for jobs 'checkout': latency_seconds=0.3 is not a bucket boundary of "
        "http_server_request_duration_seconds (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, "
        "5, 7.5, 10)",
        "SLO for jobs '.+': availability=1.0 must be between 0 and 1",
    ]


def test_generation_refuses_an_slo_off_the_bucket_boundaries(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    monkeypatch.setattr(generate, "SLOS", (ServiceSlo(latency_seconds=0.3),))
    assert generate.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "latency_seconds=0.3 is not a bucket boundary" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_the_docs_lists_name_only_existing_alerts() -> None:
    """"What the demo fires" and "Checklist items with no alert" stay true as alerts come and go."""
    names = {alert.alert for alert in alerts()}
    text = FILES[generate.DOCS_FILE]
    start = text.index("## What the demo fires by design")
    lists = text[start:text.index("## Changing a threshold or a link")]
    cited = set(re.findall(r"\b(?:[A-Z][a-z0-9]+){2,}\b", lists))
    assert cited and cited <= names, f"not alerts: {sorted(cited - names)}"
