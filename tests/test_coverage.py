"""The coverage table (stackwatch.coverage) against the seed checklist and the repository.

Every seed line is in the table, quoted as the seed words it; every name the table gives exists
(alerts in the catalog, panels in the generated dashboards, families in docs/metrics.md -- which
tests/test_docs.py ties to what the exporter really serves -- check items in the registry,
instrumentation in stackwatch.instrumentation); docs/checklist.md is what the table renders.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import stackwatch.instrumentation as instrumentation
from alerts.catalog import alerts
from stackwatch.check import items
from stackwatch.coverage import CHECKLIST, all_lines

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "reference" / "backend-performance-checklist.txt"
#: where the workplace keeps the original (absent in a fresh clone, e.g. on CI)
SHARED_SEEDS = (ROOT.parent / "shared" / "reference" / SEED.name, ROOT.parent.parent / "shared" / "reference" / SEED.name)


def seed_lines(text: str) -> dict[str, list[str]]:
    """The seed's judged lines by section: checklist lines under their heading, the pitfalls, and
    the Key Metrics entries under theirs (``Application:`` ...), each without its ``- ``."""
    sections: dict[str, list[str]] = {}
    part, heading = "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if line in ("Key Metrics", "Performance Optimization Checklist", "Common Performance Pitfalls"):
            part, heading = line, ""
        elif line == "Resources":  # the links after the pitfalls
            part = ""
        elif part == "Key Metrics" and line.endswith(":") and not line.startswith("- "):
            heading = line[:-1]
        elif part == "Performance Optimization Checklist" and not line.startswith("- "):
            heading = line
        elif part and line.startswith("- "):
            name = part if part == "Common Performance Pitfalls" else f"{part} / {heading}"
            sections.setdefault(name, []).append(line[2:])
    return sections


SECTIONS = seed_lines(SEED.read_text(encoding="utf-8"))


def test_the_seed_parses_into_its_sections() -> None:
    counts = {name: len(lines) for name, lines in SECTIONS.items()}
    assert counts == {
        "Key Metrics / Application": 4, "Key Metrics / Database": 4, "Key Metrics / Tools": 4,
        "Performance Optimization Checklist / Database": 5, "Performance Optimization Checklist / Caching": 5,
        "Performance Optimization Checklist / Application": 5, "Performance Optimization Checklist / Monitoring": 5,
        "Common Performance Pitfalls": 7,
    }, counts


def test_the_vendored_seed_is_the_shared_one() -> None:
    """In the workplace the original sits next to the repository; a fresh clone has only the copy."""
    vendored = SEED.read_bytes()
    present = [path for path in SHARED_SEEDS if path.is_file()]
    for path in present:
        assert path.read_bytes() == vendored, f"{SEED.relative_to(ROOT)} differs from {path}"
    assert vendored.startswith(b"9.4 KiB\nBackend Performance & Scalability\n")


def test_every_seed_line_is_in_the_table_verbatim_and_nothing_else() -> None:
    table = [(e.section, e.line) for e in all_lines()]
    seed = [(section, line) for section, lines in SECTIONS.items() for line in lines]
    assert sorted(table) == sorted(seed), (
        f"missing or misquoted: {sorted(set(seed) - set(table))}; not in the seed: {sorted(set(table) - set(seed))}")
    assert len(set(table)) == len(table), "a seed line is listed twice"


def test_every_line_is_covered_or_says_why_not() -> None:
    for entry in all_lines():
        assert entry.families or entry.alerts or entry.panels or entry.checks or entry.note, entry.line


def test_every_checklist_line_has_a_stat_on_the_checklist_dashboard() -> None:
    """The issue: "The Checklist dashboard gets a stat per line"; the names are checked to exist below."""
    missing = [e.line for e in CHECKLIST if not any(p.dashboard == "checklist" for p in e.panels)]
    assert not missing, f"checklist lines without a Checklist dashboard panel: {missing}"


def _panels() -> set[str]:
    titles = set()
    for path in (ROOT / "dashboards" / "json").glob("*.json"):
        board = json.loads(path.read_text())
        stack = list(board["panels"])
        while stack:
            panel = stack.pop()
            stack += panel.get("panels", [])
            titles.add(f"{board['uid'].removeprefix('stackwatch-')}/{panel['title']}")
    return titles


def _families() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return {name for row in text.splitlines() if row.startswith("| `")
            for name in re.findall(r"`([a-z_][a-z0-9_]*)`", row.split(" | ")[0])}


def _instrumentation(name: str) -> bool:
    head, _, attr = name.partition(".")
    if head not in instrumentation.__all__:
        return False
    return not attr or hasattr(getattr(instrumentation, head), attr)


def _existing() -> dict[str, set[str]]:
    checks = {i.id for name in items.__all__ if name.endswith("_ITEMS") for i in getattr(items, name)}
    return {"alerts": {a.alert for a in alerts()}, "panels": _panels(), "families": _families(), "checks": checks}


EXISTING = _existing()


def _named(kind: str) -> set[str]:
    if kind == "panels":
        return {f"{p.dashboard}/{p.title}" for e in all_lines() for p in e.panels}
    return {n for e in all_lines() for n in getattr(e, kind)}


@pytest.mark.parametrize("kind", ["alerts", "panels", "families", "checks"])
def test_every_named_signal_exists(kind: str) -> None:
    named = _named(kind)
    missing = sorted(named - EXISTING[kind])
    assert not missing, f"{kind} named in stackwatch.coverage that do not exist: {missing}"


def test_every_named_instrumentation_exists() -> None:
    missing = sorted(n for n in _named("instrumentation") if not _instrumentation(n))
    assert not missing, f"not in stackwatch.instrumentation: {missing}"


def test_the_existence_check_catches_a_wrong_name() -> None:
    assert "PostgresConnectionChurn" in EXISTING["alerts"] and "PostgresConnectionChurnn" not in EXISTING["alerts"]
    assert "checklist/Connection churn" in EXISTING["panels"] and "pg_stat_database_sessions" in EXISTING["families"]
    assert "pg_stat_database_session" not in EXISTING["families"]
    assert not _instrumentation("Cache.invalidate_patterns") and _instrumentation("Cache.invalidate_pattern")


def test_docs_checklist_is_generated_from_the_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_checklist.py"), "--check"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, "docs/checklist.md is stale: run scripts/generate"
