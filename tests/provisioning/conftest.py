"""The compose file and the provisioning files, loaded as data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "provisioning"
COMPOSE_FILE = ROOT / "docker-compose.yml"
MONITORING_ONLY_FILE = ROOT / "docker-compose.monitoring-only.yml"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    """docker-compose.yml with YAML merge keys resolved (PyYAML applies ``<<``)."""
    return load_yaml(COMPOSE_FILE)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def with_defaults(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` as compose interpolates it with ``environ`` as the .env (none by default).

    Compose's rules: ``${VAR:-default}`` takes the default when VAR is unset or empty,
    ``${VAR-default}`` only when it is unset; a bare ``${VAR}`` is VAR or empty. Innermost first.
    """
    env = environ or {}
    pattern = re.compile(r"\$\{(\w+)(?:(:?-)([^${}]*))?\}")

    def substitute(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        given = env.get(name)
        if given is None or (operator == ":-" and not given):
            return default
        return given

    while pattern.search(value):
        value = pattern.sub(substitute, value)
    return value


def exposed_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service's container listens on: its ``expose`` list and published ports."""
    ports = {int(p) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        ports.add(int(str(mapping).rsplit(":", 1)[-1].split("/")[0]))
    return ports
