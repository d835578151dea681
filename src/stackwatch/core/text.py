"""Text shared by every output: byte sizes as people read them, and Markdown table cells."""

from __future__ import annotations

import re

__all__ = ["byte_size", "markdown_cell"]

_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
#: code spans (kept as written: backslash escapes do not work inside them) and everything else
_CODE_SPAN = re.compile(r"(`[^`\n]*`)")
#: characters CommonMark/GFM would read as emphasis, links, HTML, escapes or strikethrough
_INLINE = re.compile(r"([\\*_~\[\]<>`])")


def byte_size(n_bytes: float) -> str:
    """``1048576`` -> ``1 MiB``, ``1536`` -> ``1.5 KiB``, ``812`` -> ``812 B``: the largest binary
    unit the size reaches, with one decimal at most (none when it is zero)."""
    for unit, factor in _UNITS:
        if abs(n_bytes) >= factor:
            return f"{_one_decimal(n_bytes / factor)} {unit}"
    return f"{_one_decimal(n_bytes)} B"


def _one_decimal(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def markdown_cell(text: str) -> str:
    """``text`` as literal Markdown inside a GFM table cell: ``***`` (a redacted secret) stays
    three asterisks, not bold/italic markers; pipes are escaped even inside code spans (the table
    is split on them first); newlines become ``<br>``."""
    parts = _CODE_SPAN.split(text)
    escaped = "".join(part if i % 2 else _INLINE.sub(r"\\\1", part) for i, part in enumerate(parts))
    return escaped.replace("|", "\\|").replace("\n", "<br>")
