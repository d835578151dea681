"""A version-tolerant parser for the text of ``INFO`` (Redis 6 and 7, Valkey).

``INFO`` is ``# Section`` headers followed by ``key:value`` lines. Versions add, drop and
rename fields, and forks (Valkey) add their own, so the parser keeps every field as text and
the collectors ask for the ones they know, getting ``None`` for the rest. It never raises:
a garbled line is skipped, not fatal, because one odd field must not cost the whole poll.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Info", "command_stats", "parse_fields", "parse_info", "parse_number"]


@dataclass(frozen=True)
class Info:
    """Parsed ``INFO``: fields by lower-case section, and one flat index over all sections."""

    sections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)

    def has_section(self, name: str) -> bool:
        return name.lower() in self.sections

    def section(self, name: str) -> Mapping[str, str]:
        """The fields of a section (empty when the server has no such section)."""
        return self.sections.get(name.lower(), {})

    def text(self, key: str) -> str | None:
        return self.fields.get(key)

    def number(self, key: str) -> float | None:
        """The field as a number, or None when absent or not numeric."""
        value = self.fields.get(key)
        return None if value is None else parse_number(value)


def parse_number(value: str) -> float | None:
    """A finite float from an INFO value, or None (``ok``/``err`` are not numbers here)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_fields(value: str) -> dict[str, str]:
    """``keys=1,expires=0,avg_ttl=0`` as a dict; pieces without ``=`` are skipped."""
    out: dict[str, str] = {}
    for piece in value.split(","):
        key, sep, item = piece.partition("=")
        if sep and key:
            out[key.strip()] = item.strip()
    return out


def parse_info(text: str | bytes) -> Info:
    """Parse INFO output of any version; never raises, whatever the input."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    sections: dict[str, dict[str, str]] = {}
    flat: dict[str, str] = {}
    current: dict[str, str] = sections.setdefault("", {})
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            current = sections.setdefault(line.lstrip("#").strip().lower(), {})
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            continue
        current[key] = value.strip()
        flat[key] = value.strip()
    if not sections[""]:
        del sections[""]
    return Info(sections=sections, fields=flat)


def command_stats(info: Info) -> dict[str, dict[str, str]]:
    """commandstats fields by command name (``cmdstat_`` stripped)."""
    return {key[len("cmdstat_"):]: parse_fields(value)
            for key, value in info.section("commandstats").items() if key.startswith("cmdstat_")}
