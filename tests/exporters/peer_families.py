"""The peers' default metric families (``peer_families.yaml``) and a reader of /metrics that
lists families the same way, shared by the drop-in test and ``scripts/record_peer_families.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DATA", "LATEST", "Family", "load", "parse"]

DATA = Path(__file__).with_name("peer_families.yaml")
LATEST = Path(__file__).with_name("peer_families_latest.yaml")
#: stackwatch puts ``server`` on every series; ``le``/``quantile`` belong to the type
IGNORED_LABELS = frozenset({"server", "le", "quantile"})
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


@dataclass
class Family:
    """One family of a text-format exposition: its ``# TYPE``, label names and sample count."""

    type: str
    labels: set[str]
    samples: int = 0


def parse(text: str) -> dict[str, Family]:
    """Families of a Prometheus text-format exposition, named as in its ``# TYPE`` lines."""
    out: dict[str, Family] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out[name] = Family(kind, set())
            continue
        match = None if line.startswith("#") else _SAMPLE.match(line)
        if not match:
            continue
        sample = match.group(1)
        owner = out.get(sample) or out.get(re.sub(r"_(sum|count|bucket)$", "", sample))
        if owner is not None:
            owner.labels |= set(_LABEL.findall(match.group(2) or "")) - IGNORED_LABELS
            owner.samples += 1
    return out


def load(path: Path = DATA) -> dict[str, dict[str, dict[str, Any]]]:
    """``{peer: {family: {type, labels[, majors | since]}}}`` from a committed data file."""
    return yaml.safe_load(path.read_text())
