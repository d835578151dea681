#!/usr/bin/env python3
"""Regenerate the generated blocks of README.md (the option tables) from the option rows.

Usage: python scripts/render_readme.py [--check]   (--check: exit 1 when README.md is stale)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _exporter_options() -> str:
    from stackwatch.exporters.main import all_options
    from stackwatch.exporters.options import markdown_table

    return markdown_table(all_options())


def _check_options() -> str:
    from stackwatch.check.cli import OPTIONS
    from stackwatch.exporters.options import markdown_table

    return markdown_table(OPTIONS)


BLOCKS: dict[str, Callable[[], str]] = {
    "exporter options": _exporter_options,
    "check options": _check_options,
}


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, produce in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} [^>]*-->\n).*?(<!-- END {name} -->)", re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda m, produce=produce: m.group(1) + produce() + "\n" + m.group(2), text)
    return text


def main() -> int:
    current = README.read_text()
    fresh = render(current)
    if "--check" in sys.argv:
        return 0 if fresh == current else 1
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
