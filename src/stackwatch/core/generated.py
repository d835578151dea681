"""Write generated files, or with ``--check`` only report the stale ones: one behaviour for
every generator (rules, dashboards, README tables), so ``scripts/generate --check`` and the drift
tests mean the same thing everywhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["stale", "write", "write_or_check"]


def stale(files: Mapping[Path, str]) -> list[Path]:
    """The paths of ``files`` that are missing or whose content differs."""
    return [path for path, text in files.items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def write(files: Mapping[Path, str]) -> list[Path]:
    """Write the stale files of ``files`` (creating folders); return them."""
    changed = stale(files)
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
    return changed


def write_or_check(files: Mapping[Path, str], check: bool, command: str, root: Path,
                   orphans: Iterable[Path] = ()) -> int:
    """Write ``files`` and say which changed (exit code 0); with ``check``, write nothing and name
    every stale file and every orphan (a generated file no source makes any more) on stderr, with
    the ``command`` that fixes them (exit code 1 when there is any)."""
    if check:
        drift = sorted({*stale(files), *orphans})
        for path in drift:
            print(f"{path.relative_to(root)} is out of date: run `{command}`", file=sys.stderr)
        return 1 if drift else 0
    for path in write(files):
        print(f"wrote {path.relative_to(root)}")
    return 0
