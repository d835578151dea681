"""Settings the checklist needs: connection limits, memory, slow-query logging, extensions.

Names follow postgres_exporter's settings collector: ``pg_settings_<name>`` in base units.
Values are ``reset_val``: the server's (or database's/role's) setting, not the exporter session's
own ``statement_timeout``/``lock_timeout``.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from ..families import gauge
from .source import PostgresSource

__all__ = ["SettingsCollector"]

# setting name -> unit multiplier to base units (bytes, seconds); "bool" for on/off
_SETTINGS: dict[str, str] = {
    "max_connections": "",
    "superuser_reserved_connections": "",
    "shared_buffers": "bytes",
    "work_mem": "bytes",
    "effective_cache_size": "bytes",
    "log_min_duration_statement": "seconds",
    "statement_timeout": "seconds",
    "idle_in_transaction_session_timeout": "seconds",
    "track_io_timing": "bool",
}

_UNIT_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1024**2, "16MB": 16 * 1024**2, "GB": 1024**3, "TB": 1024**4}
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

SQL = """
SELECT name, reset_val AS setting, unit, vartype FROM pg_settings WHERE name = ANY(%(names)s)
"""


def to_base_unit(setting: str, unit: str | None, vartype: str) -> float:
    """Convert a pg_settings value to base units; -1 (disabled) is kept as -1."""
    if vartype == "bool":
        return 1.0 if setting == "on" else 0.0
    value = float(setting)
    if value < 0 or not unit:
        return value
    if unit in _UNIT_BYTES:
        return value * _UNIT_BYTES[unit]
    return value * _UNIT_SECONDS.get(unit, 1.0)


class SettingsCollector(Collector[PostgresSource]):
    name = "settings"
    tier = Tier.SLOW

    def collect(self, source: PostgresSource) -> list[Metric]:
        families: list[Metric] = []
        for row in source.rows(SQL, {"names": list(_SETTINGS)}):
            suffix = _SETTINGS[row["name"]]
            name = f"pg_settings_{row['name']}" + (f"_{suffix}" if suffix in ("bytes", "seconds") else "")
            family = gauge(name, f"Server Parameter: {row['name']} (pg_settings, base units).")
            family.add_metric([], to_base_unit(row["setting"], row["unit"], row["vartype"]))
            families.append(family)
        preload = gauge("pg_settings_pg_stat_statements_loaded",
                        "1 when pg_stat_statements is in shared_preload_libraries.")
        preload.add_metric([], 1.0 if source.preloaded("pg_stat_statements") else 0.0)
        version = gauge("pg_server_version_num", "server_version_num of the instance.")
        version.add_metric([], source.version)
        return families + [preload, version]
