"""The scale-out profile's Kubernetes values (deploy/scale-out/): kube-prometheus-stack's
Prometheus and Alertmanager specs valid for prometheus-operator's CRDs, strictly, and the exporter
chart rendering without a PrometheusRule (vmalert evaluates the rules centrally)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.chart import by_kind, render
from tests.deploy.test_validation import CRDS, _problems
from tests.fixtures.prometheus import REPO_ROOT

SCALE_OUT = REPO_ROOT / "deploy" / "scale-out"
OPERATOR = "monitoring.coreos.com/v1"


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """What kube-prometheus-stack makes of ``<kind>Spec``: the resource whose spec it is."""
    return {"apiVersion": OPERATOR, "kind": kind, "metadata": {"name": "kps", "namespace": "monitoring"}, "spec": spec}


def _values() -> dict[str, Any]:
    return dict(yaml.safe_load((SCALE_OUT / "kube-prometheus-stack-values.yaml").read_text(encoding="utf-8")))


def test_the_ha_pair_and_the_alertmanager_pair_are_valid_resources() -> None:
    values = _values()
    prometheus = _resource("Prometheus", values["prometheus"]["prometheusSpec"])
    alertmanager = _resource("Alertmanager", values["alertmanager"]["alertmanagerSpec"])
    assert {(OPERATOR, "Prometheus"), (OPERATOR, "Alertmanager")} <= set(CRDS)
    assert _problems(prometheus) == [] and _problems(alertmanager) == []
    spec = prometheus["spec"]
    assert spec["replicas"] == 2 and spec["replicaExternalLabelName"] == "__replica__"
    assert "cluster" in spec["externalLabels"] and spec["remoteWrite"][0]["url"].endswith("/api/v1/write")
    assert alertmanager["spec"]["replicas"] == 2


def test_the_validation_is_strict_for_these_kinds_too() -> None:
    spec = _values()["prometheus"]["prometheusSpec"]
    assert any("replicaExternalLabelNames" in p for p in _problems(_resource("Prometheus", {
        **spec, "replicaExternalLabelNames": "__replica__"})))
    assert any("spec/replicas" in p for p in _problems(_resource("Prometheus", {**spec, "replicas": "two"})))


def test_the_exporter_chart_leaves_the_rules_to_vmalert() -> None:
    objects = render(SCALE_OUT / "stackwatch-exporter-values.yaml")
    assert by_kind(objects, "PrometheusRule") == []
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert {f"{o['kind']}/{o['metadata']['name']}": _problems(o) for o in objects if _problems(o)} == {}
