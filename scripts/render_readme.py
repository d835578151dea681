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
    from stackwatch.core.options import markdown_table
    from stackwatch.exporters.main import all_options

    return markdown_table(all_options())


def _check_options() -> str:
    from stackwatch.check.cli import OPTIONS
    from stackwatch.core.options import markdown_table

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
    from stackwatch.core.generated import write_or_check

    return write_or_check({README: render(README.read_text())}, "--check" in sys.argv,
                          "python scripts/render_readme.py", README.parent)


if __name__ == "__main__":
    sys.exit(main())
