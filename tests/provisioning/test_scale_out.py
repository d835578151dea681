"""docker-compose.scale-out.yml and provisioning/scale-out/: valid, complete, derived from the
one-host files (the live behaviour is tests/e2e/test_scale_out.py)."""

from __future__ import annotations

import importlib.util
import subprocess
from types import ModuleType
from typing import Any

import yaml

from tests.fixtures.procs import venv_tool

from .conftest import PROVISIONING, ROOT, load_yaml, services

OVERRIDE = ROOT / "docker-compose.scale-out.yml"


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_scale_out", ROOT / "scripts" / "render_scale_out.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _override() -> dict[str, Any]:
    return dict(load_yaml(OVERRIDE)["services"])


def test_validates_against_the_compose_spec() -> None:
    result = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(OVERRIDE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_generated_files_are_fresh() -> None:
    for path, text in _renderer().rendered().items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run scripts/generate"


def test_the_pair_scrapes_what_the_one_host_prometheus_scrapes() -> None:
    one_host = {job["job_name"] for job in load_yaml(PROVISIONING / "prometheus" / "prometheus.yml")["scrape_configs"]}
    replicas = [load_yaml(PROVISIONING / "scale-out" / f"prometheus-{r}.yml") for r in ("a", "b")]
    for config in replicas:
        assert one_host <= {job["job_name"] for job in config["scrape_configs"]}
        assert "rule_files" not in config and "alerting" not in config  # vmalert evaluates, once
        assert config["remote_write"] == [{"url": "http://victoriametrics:8428/api/v1/write"}]
    labels = [config["global"]["external_labels"] for config in replicas]
    assert [label.pop("__replica__") for label in labels] == ["a", "b"]
    assert labels[0] == labels[1]  # nothing else tells the replicas apart
    relabel = yaml.safe_load((PROVISIONING / "scale-out" / "victoriametrics-relabel.yml").read_text())
    assert relabel == [{"action": "labeldrop", "regex": "__replica__"}]


def test_every_mount_exists_and_new_services_are_pinned_and_healthchecked() -> None:
    base = services()
    for name, service in _override().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
        if name not in base:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
            assert "healthcheck" in service, name


def test_vmalert_notifies_both_alertmanagers_which_gossip() -> None:
    override = _override()
    notifiers = [arg.split("=", 1)[1] for arg in override["vmalert"]["command"] if arg.startswith("-notifier.url=")]
    assert notifiers == ["http://alertmanager:9093", "http://alertmanager-b:9093"]
    assert "--cluster.peer=alertmanager-b:9094" in override["alertmanager"]["command"]
    assert "--cluster.peer=alertmanager:9094" in override["alertmanager-b"]["command"]
    datasources = load_yaml(PROVISIONING / "scale-out" / "grafana-datasources" / "datasources.yml")["datasources"]
    assert {s["uid"]: s["url"] for s in datasources}["prometheus"] == "http://victoriametrics:8428"
