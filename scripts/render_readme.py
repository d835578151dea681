#!/usr/bin/env python3
"""Regenerate the option tables of README.md and docs/instrumentation.md from the options' declarations.

Usage: python scripts/render_readme.py [--check]   (--check: exit 1 when a file is stale)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
INSTRUMENTATION = ROOT / "docs" / "instrumentation.md"


def _exporter_options() -> str:
    from stackwatch.core.options import markdown_table
    from stackwatch.exporters.main import all_options

    return markdown_table(all_options())


def _check_options() -> str:
    from stackwatch.check.cli import OPTIONS
    from stackwatch.core.options import markdown_table

    return markdown_table(OPTIONS)


def _instrumentation_settings() -> str:
    from stackwatch.core.option_fields import settings_table
    from stackwatch.instrumentation.config import Settings

    return settings_table(Settings)


BLOCKS: dict[str, Callable[[], str]] = {
    "exporter options": _exporter_options,
    "check options": _check_options,
    "instrumentation settings": _instrumentation_settings,
}


def render(text: str) -> str:
    """``text`` with every generated block it holds replaced by its current content."""
    for name, produce in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} [^>]*-->\n).*?(<!-- END {name} -->)", re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda m, produce=produce: m.group(1) + produce() + "\n" + m.group(2), text)
    return text


def main() -> int:
    from stackwatch.core.generated import write_or_check

    return write_or_check({path: render(path.read_text()) for path in (README, INSTRUMENTATION)}, "--check" in sys.argv,
                          "python scripts/render_readme.py", ROOT)


if __name__ == "__main__":
    sys.exit(main())
