"""What the Helm chart renders: a hardened exporter whose credentials come only from Secrets, the
objects prometheus-operator and the Grafana sidecar pick up, and rules and dashboards that are the
catalog's own."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.generate import ALERTING_FILE, RECORDING_FILE
from dashboards.generate import JSON_DIR
from deploy.generate import MANIFESTS, PLAIN_VALUES, helm
from tests.deploy.chart import CHART_DIR, CI_VALUES, by_kind, load_objects, render
from tests.fixtures.prometheus import REPO_ROOT

CI = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}
#: kubectl's client-side apply keeps the whole object in an annotation of at most this many bytes
APPLY_ANNOTATION_LIMIT = 262_144


def _container(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_exporter_runs_unprivileged_read_only_and_bounded() -> None:
    (deployment,) = by_kind(render(CI["default"]), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(render(CI["default"]))
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def test_credentials_come_only_from_secrets_as_files() -> None:
    objects = render(CI["probe"])
    container = _container(objects)
    (deployment,) = by_kind(objects, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    for variable, secret in (("STACKWATCH_POSTGRES_DSN_FILE", "stackwatch-postgres"),
                             ("STACKWATCH_REDIS_URL_FILE", "stackwatch-redis")):
        directory = str(Path(env[variable]).parent)
        assert volumes[mounts[directory]]["secret"]["secretName"] == secret
    targets = next(a for a in container["args"] if a.startswith("--targets-file="))
    assert volumes[mounts[str(Path(targets.split("=", 1)[1]).parent)]]["secret"]["secretName"] == "stackwatch-targets"
    # no credential in the pod spec: no DSN or URL variable, no Secret kind rendered by the chart
    assert not {"STACKWATCH_POSTGRES_DSN", "STACKWATCH_REDIS_URL"} & env.keys()
    assert not by_kind(objects, "Secret")


def test_tls_and_basic_auth_reach_the_scrapes_and_the_probes() -> None:
    objects = render(CI["tls-basic-auth"])
    container = _container(objects)
    assert "--web.config.file=/etc/stackwatch/web/web-config.yml" in container["args"]
    # the kubelet cannot send the password: TCP probes
    assert container["livenessProbe"]["tcpSocket"] and container["readinessProbe"]["tcpSocket"]
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (probe,) = by_kind(objects, "Probe")
    for scrape in (monitor["spec"]["endpoints"][0], probe["spec"]):
        assert scrape["basicAuth"]["password"]["name"] == "stackwatch-scrape-auth"
        assert scrape["tlsConfig"]["ca"]["secret"]["name"] == "stackwatch-ca"
    assert monitor["spec"]["endpoints"][0]["scheme"] == probe["spec"]["prober"]["scheme"] == "https"


def test_scrapes_carry_the_job_names_the_rules_expect_and_the_selector_labels() -> None:
    objects = render(CI["probe"])
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (probe,) = by_kind(objects, "Probe")
    relabel = monitor["spec"]["endpoints"][0]["relabelings"][0]
    assert (relabel["targetLabel"], relabel["replacement"]) == ("job", "stackwatch-exporter")
    assert probe["spec"]["jobName"] == "stackwatch-probe"
    assert probe["spec"]["prober"] == {"url": "stackwatch-exporter.monitoring.svc:9188", "path": "/probe",
                                       "scheme": "http"}
    assert probe["spec"]["targets"]["staticConfig"]["static"] == ["orders-db", "sessions-cache"]
    monitors = by_kind(objects, "PodMonitor")
    assert [m["metadata"]["name"] for m in monitors] == ["orders-api", "billing-api"]
    # kube-prometheus-stack selects by its release label: on by default, on every operator object
    for obj in (monitor, probe, *monitors, *by_kind(objects, "PrometheusRule")):
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack", obj["kind"]


def test_namespaces_and_labels_are_configurable() -> None:
    objects = render(CI["separate-namespaces"])
    (rule,) = by_kind(objects, "PrometheusRule")
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert rule["metadata"]["namespace"] == monitor["metadata"]["namespace"] == "observability"
    assert rule["metadata"]["labels"]["role"] == "alert-rules" and rule["metadata"]["labels"]["release"] == "monitoring"
    assert monitor["metadata"]["labels"]["team"] == "platform"
    # the ServiceMonitor in another namespace still finds the exporter's Service
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    boards = by_kind(objects, "ConfigMap")
    assert {b["metadata"]["namespace"] for b in boards} == {"grafana"}
    assert all(b["metadata"]["labels"]["grafana_dashboard_stackwatch"] == "yes" for b in boards)
    assert all(b["metadata"]["annotations"]["k8s-sidecar-target-directory"] == "/tmp/dashboards/Stackwatch"
               for b in boards)
    # grafana-operator's form reads each ConfigMap's JSON
    operator = by_kind(objects, "GrafanaDashboard")
    assert sorted((d["spec"]["configMapRef"]["name"], d["spec"]["configMapRef"]["key"]) for d in operator) == \
        sorted((b["metadata"]["name"], next(iter(b["data"]))) for b in boards)
    assert {d["metadata"]["namespace"] for d in operator} == {"grafana"}
    assert operator[0]["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "shared-grafana"}}
    assert not by_kind(render(CI["default"]), "GrafanaDashboard")


def test_the_prometheus_rule_holds_the_catalog_rules() -> None:
    (rule,) = by_kind(render(CI["default"]), "PrometheusRule")
    committed = [group for rel in (RECORDING_FILE, ALERTING_FILE)
                 for group in yaml.safe_load((REPO_ROOT / rel).read_text(encoding="utf-8"))["groups"]]
    assert rule["spec"]["groups"] == committed


def test_one_configmap_per_dashboard_for_the_sidecar_under_the_apply_limit() -> None:
    boards = by_kind(render(CI["default"]), "ConfigMap")
    committed = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in JSON_DIR.glob("*.json")}
    assert sorted(name for board in boards for name in board["data"]) == sorted(committed)
    for board in boards:
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert board["metadata"]["annotations"]["grafana_folder"] == "Stackwatch"
        assert len(json.dumps(board, separators=(",", ":")).encode()) < APPLY_ANNOTATION_LIMIT
        ((name, text),) = board["data"].items()
        shown = json.loads(text)
        # the catalog's dashboard, with $cluster shown: a Kubernetes Prometheus is one cluster of several
        cluster = next(v for v in shown["templating"]["list"] if v["name"] == "cluster")
        assert cluster["hide"] == 0
        cluster["hide"] = next(v for v in committed[name]["templating"]["list"] if v["name"] == "cluster")["hide"]
        assert shown == committed[name]


def test_the_plain_manifests_are_the_chart_rendered() -> None:
    committed = load_objects((REPO_ROOT / MANIFESTS).read_text(encoding="utf-8"))
    assert committed == render(REPO_ROOT / PLAIN_VALUES)
    assert {o["metadata"]["namespace"] for o in committed} == {"monitoring"}


@pytest.mark.parametrize(("values", "key"), [
    ("port: '9188'\n", "/port"),
    ("serviceMonitor:\n  interval: 15\n", "/serviceMonitor/interval"),
    ("probe:\n  targets: orders-db\n", "/probe/targets"),
    ("prometheusSelectorLabels:\n  release: 1\n", "/prometheusSelectorLabels/release"),
    ("dashboard:\n  enabled: false\n", "dashboard"),
])
def test_a_wrong_value_fails_the_schema_naming_the_key(values: str, key: str, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(values, encoding="utf-8")
    result = subprocess.run([helm(), "template", "x", str(CHART_DIR), "--values", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert re.search(re.escape(key) + r"\b", result.stderr), result.stderr
