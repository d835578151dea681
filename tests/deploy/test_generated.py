"""The chart's generated files and the plain manifests match their sources, and a rule that does
not parse fails generation (not a Prometheus, a ruler or prometheus-operator later)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import alerts.generate
from alerts.rules import Group, Record
from deploy import generate
from tests.fixtures.prometheus import REPO_ROOT


def test_committed_chart_files_and_manifests_match_their_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_a_stale_or_edited_file_is_reported_and_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    for rel in (generate.CHART, "deploy/kubernetes"):
        shutil.copytree(REPO_ROOT / rel, root / rel)
    rules = root / generate.CHART / "files" / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("> 0.9", "> 0.99"), encoding="utf-8")
    (root / generate.CHART / "files" / "dashboards" / "old.json").write_text("{}", encoding="utf-8")
    assert generate.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "files/rules.yaml differs" in err and "old.json differs" in err and "stackwatch-exporter.yaml" not in err
    assert generate.main(["--root", str(root)]) == 0
    assert generate.main(["--check", "--root", str(root)]) == 0
    assert not (root / generate.CHART / "files" / "dashboards" / "old.json").exists()


@pytest.mark.parametrize("expr", ["sum by (job) (rate(x[5m])) >", "rate(x[5m]) / on (job) group_left"])
def test_a_rule_that_does_not_parse_fails_generation(expr: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    broken = Group("stackwatch.broken", (Record("job:broken:rate5m", expr),))
    monkeypatch.setattr(alerts.generate, "GROUPS", (*alerts.generate.GROUPS, broken))
    monkeypatch.setattr(generate, "GROUPS", (*generate.GROUPS, broken))
    assert alerts.generate.main(["--check"]) == 2
    assert generate.main(["--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("group stackwatch.broken, rule job:broken:rate5m: the expression does not parse") == 2
