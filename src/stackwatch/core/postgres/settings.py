"""``pg_settings`` values in base units (seconds, bytes), as postgres_exporter names them, for the
exporter's settings collector and for ``stackwatch check`` alike."""

from __future__ import annotations

import re

__all__ = ["setting_name", "to_base_unit"]

_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_BYTES = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
# memory units are a multiple of a base unit: 8kB (blocks), 16MB (WAL segments)...
_MEMORY_UNIT = re.compile(r"^(\d*)(B|kB|MB|GB|TB)$")


def _unit_kind(unit: str | None) -> str:
    if unit in _SECONDS:
        return "seconds"
    if unit and _MEMORY_UNIT.match(unit):
        return "bytes"
    return ""


def setting_name(name: str, unit: str | None) -> str:
    """postgres_exporter's family name of a setting: ``pg_settings_<name>[_seconds|_bytes]``."""
    kind = _unit_kind(unit)
    return "pg_settings_" + name.replace(".", "_") + (f"_{kind}" if kind else "")


def to_base_unit(setting: str, unit: str | None, vartype: str) -> float:
    """Convert a pg_settings value to base units; -1 (disabled) is kept as -1."""
    if vartype == "bool":
        return 1.0 if setting == "on" else 0.0
    value = float(setting)
    if value == -1 or not unit:
        return value
    if unit in _SECONDS:
        return value * _SECONDS[unit]
    memory = _MEMORY_UNIT.match(unit)
    if memory:
        return value * int(memory.group(1) or 1) * _BYTES[memory.group(2)]
    return value
