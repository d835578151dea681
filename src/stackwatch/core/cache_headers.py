"""``Cache-Control`` header values as directives, for the instrumentation and ``stackwatch check``.

Standard library only: imported at runtime by the CLI and on the instrumentation's request path.
"""

from __future__ import annotations

__all__ = ["directives"]


def directives(value: str) -> dict[str, str]:
    """``"public, max-age=60"`` -> ``{"public": "", "max-age": "60"}``: names lowercased, quotes dropped."""
    parsed = {}
    for part in value.split(","):
        name, _, argument = part.partition("=")
        name = name.strip().lower()
        if name:
            parsed[name] = argument.strip().strip('"')
    return parsed
