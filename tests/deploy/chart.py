"""The Helm chart rendered by the real ``helm`` (the one ``make deps`` installs), as data.

Each values file of the chart's ``ci/`` is rendered once per session; tests read the objects.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from deploy.generate import CHART, render_manifests
from tests.fixtures.prometheus import REPO_ROOT

__all__ = ["CHART_DIR", "CI_VALUES", "by_kind", "load_objects", "render"]

CHART_DIR = REPO_ROOT / CHART
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))


def load_objects(text: str) -> tuple[dict[str, Any], ...]:
    """The objects of a multi-document manifest (libyaml's loader: the dashboards make it large)."""
    return tuple(doc for doc in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if doc)


@functools.cache
def render(*values: Path) -> tuple[dict[str, Any], ...]:
    """Every object ``helm template`` renders with ``values`` (release stackwatch-exporter in monitoring)."""
    return load_objects(render_manifests(CHART_DIR, values))


def by_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]
