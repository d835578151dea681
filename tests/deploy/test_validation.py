"""Every object the chart renders (each ci/*-values.yaml case and the plain manifests) is valid,
offline and strictly: unknown fields fail too.

Kubernetes kinds against the OpenAPI schemas kubernetes-validate bundles, for the oldest
Kubernetes the chart supports, a middle one and the newest; prometheus-operator kinds against the
CRDs' openAPIV3Schema, vendored as data in tests/deploy/crds/ (prometheus-operator v0.93.0, and
grafana-operator v5's GrafanaDashboard), made
strict the way kubeconform does (no property outside those declared, except where the CRD
preserves unknown fields); the rules inside the PrometheusRule through promtool.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.generate import MANIFESTS
from tests.deploy.chart import CI_VALUES, by_kind, load_objects, render
from tests.fixtures.prometheus import REPO_ROOT

#: the chart's kubeVersion floor, a middle release and the newest kubernetes-validate knows
KUBERNETES_VERSIONS = ("1.27", "1.31", "1.37")
CRDS_DIR = Path(__file__).parent / "crds"
PLAIN = REPO_ROOT / MANIFESTS


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema as a strict JSON schema: objects with declared properties accept no
    others, ``x-kubernetes-int-or-string`` accepts both."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if schema.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    for path in sorted(CRDS_DIR.glob("*.json")):
        crd = json.loads(path.read_text(encoding="utf-8"))
        schema = _strict(crd["openAPIV3Schema"])
        # metadata is the API server's: a name, a namespace and string maps
        schema["properties"]["metadata"] = {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
                           "namespace": {"type": "string"},
                           "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                           "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
            "additionalProperties": False}
        validators[(crd["apiVersion"], crd["kind"])] = jsonschema.Draft7Validator(schema)
    return validators


CRDS = _crd_validators()
CASES = [*CI_VALUES, PLAIN]


def _objects(case: Path) -> tuple[dict[str, Any], ...]:
    if case == PLAIN:
        return load_objects(PLAIN.read_text(encoding="utf-8"))
    return render(case)


def _problems(obj: dict[str, Any]) -> list[str]:
    """Why ``obj`` is not a valid object of its kind (empty when it is)."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRDS:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in CRDS[key].iter_errors(obj)]
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"Kubernetes {version}: {str(error).splitlines()[0][:300]}")
    return problems


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_every_object_is_valid_for_its_schema(case: Path) -> None:
    objects = _objects(case)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"} <= kinds
    problems = {f"{obj['kind']}/{obj['metadata']['name']}": _problems(obj) for obj in objects}
    assert {name: found for name, found in problems.items() if found} == {}


def test_every_custom_resource_kind_is_covered() -> None:
    """No object of a CRD kind is waved through for want of its schema (kubernetes-validate would
    only report it unknown)."""
    kinds = {(obj["apiVersion"], obj["kind"]) for case in CI_VALUES for obj in render(case)
             if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith("apps/")}
    assert kinds == {
        *(("monitoring.coreos.com/v1", kind) for kind in ("ServiceMonitor", "Probe", "PodMonitor", "PrometheusRule")),
        ("grafana.integreatly.org/v1beta1", "GrafanaDashboard")}
    # Prometheus and Alertmanager: the scale-out values' specs (test_scale_out.py)
    assert set(CRDS) == kinds | {("monitoring.coreos.com/v1", "Prometheus"), ("monitoring.coreos.com/v1", "Alertmanager")}


def test_the_validation_rejects_what_the_cluster_would() -> None:
    """Each schema is strict: a misspelled field and a wrong type fail, naming the field."""
    deployment = by_kind(render(CI_VALUES[0]), "Deployment")[0]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert any("readinessprobe" in p for p in _problems(broken))
    monitor = json.loads(json.dumps(by_kind(render(CI_VALUES[0]), "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    assert any("intervall" in p for p in _problems(monitor))
    monitor["spec"]["endpoints"][0].pop("intervall")
    monitor["spec"]["endpoints"][0]["interval"] = 15
    assert any("spec/endpoints/0/interval" in p for p in _problems(monitor))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_the_rules_inside_the_prometheus_rule_pass_promtool(case: Path, promtool: str, tmp_path: Path) -> None:
    (rule,) = by_kind(_objects(case), "PrometheusRule")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, allow_unicode=True), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
