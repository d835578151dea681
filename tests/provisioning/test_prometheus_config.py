"""provisioning/prometheus/prometheus.yml passes promtool with the repository's rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from stackwatch.thresholds import EXPORTER_JOB

from .conftest import PROVISIONING, ROOT, load_yaml, services

CONFIG = PROVISIONING / "prometheus" / "prometheus.yml"


def test_promtool_checks_the_config_and_the_rules(promtool: str, tmp_path: Path) -> None:
    config = load_yaml(CONFIG)
    # the compose file mounts alerts/rules at /etc/prometheus/rules; point there natively
    config["rule_files"] = [rule.replace("/etc/prometheus/rules", str(ROOT / "alerts" / "rules"))
                            for rule in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") >= 1 + len(list((ROOT / "alerts" / "rules").glob("*.yml")))


def test_rule_files_glob_matches_the_compose_mount() -> None:
    (rule_glob,) = load_yaml(CONFIG)["rule_files"]
    mounts = dict(v.split(":")[:2][::-1] for v in services()["prometheus"]["volumes"])
    source = mounts[str(Path(rule_glob).parent)]
    assert sorted((ROOT / source).glob(Path(rule_glob).name)), f"{rule_glob} matches no rule file"


def test_scrape_jobs_are_the_contracts() -> None:
    jobs = [job["job_name"] for job in load_yaml(CONFIG)["scrape_configs"]]
    assert jobs == [EXPORTER_JOB, "demo", "demo-worker", "prometheus", "alertmanager", "node", "otel-collector", "tempo",
                    "grafana"]
