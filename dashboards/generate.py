"""Write the committed dashboard JSON from the sources (design principle 3).

    python -m dashboards.generate            # rewrite dashboards/json/<uid>.json
    python -m dashboards.generate --check    # exit 1 when a committed file differs

Grafana provisions ``dashboards/json/`` (provisioning/grafana/dashboards/stackwatch.yml);
``tests/dashboards/test_generated.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from .src import checklist, postgres, processes, redis, service

__all__ = ["ROOT", "JSON_DIR", "BUILDERS", "build_all", "render", "render_all", "write_all", "stale", "main"]

ROOT = Path(__file__).resolve().parent.parent
JSON_DIR = ROOT / "dashboards" / "json"

#: every dashboard, in the order the docs list them
BUILDERS: Sequence[Callable[[], Dashboard]] = (
    checklist.build, service.build, postgres.build, redis.build, processes.build,
)


def build_all() -> list[Dashboard]:
    """The dashboards as grafanalib objects."""
    return [build() for build in BUILDERS]


def render(board: Dashboard) -> str:
    """Stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(board.to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def render_all() -> dict[str, str]:
    """File name (``<uid>.json``) to content for every dashboard."""
    return {f"{board.uid}.json": render(board) for board in build_all()}


def write_all(directory: Path = JSON_DIR) -> list[str]:
    """Write every dashboard; returns the names of the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Files that differ from the sources, are missing, or belong to no dashboard."""
    expected = render_all()
    present = {p.name for p in directory.glob("*.json")}
    differ = [n for n, text in expected.items() if n not in present or (directory / n).read_text() != text]
    return sorted(differ + sorted(present - expected.keys()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that differ; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        drift = stale()
        for name in drift:
            print(f"dashboards/json/{name} is out of date: run `python -m dashboards.generate`", file=sys.stderr)
        return 1 if drift else 0
    for name in write_all():
        print(f"wrote dashboards/json/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
