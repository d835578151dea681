"""Server settings: every numeric and on/off parameter, the server version and start time.

Names follow postgres_exporter's settings collector, so its dashboards work unchanged: every
``pg_settings`` row of type bool, integer or real becomes ``pg_settings_<name>`` (dots become
underscores) with ``_seconds`` or ``_bytes`` appended when the setting has a time or memory
unit, converted to that base unit (-1, "disabled", is kept as -1). About 300 unlabelled series
per server, read in one query on the slow tier. Values are ``reset_val``: the server's (or
database's/role's) setting, not the exporter session's own ``statement_timeout``/``lock_timeout``.
Each setting stands alone: one that cannot be converted is left out (and reported as
``degraded``), the others are still exported.
"""

from __future__ import annotations

import re

from prometheus_client.core import Metric

from stackwatch.core.postgres.settings import setting_name, to_base_unit
from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge, untyped

__all__ = ["SettingsCollector"]

SQL = """
SELECT name, reset_val AS setting, unit, vartype, short_desc FROM pg_settings
WHERE vartype IN ('bool', 'integer', 'real') ORDER BY name
"""

STATIC_SQL = """
SELECT version() AS version, current_setting('server_version') AS server_version,
       extract(epoch FROM pg_postmaster_start_time())::float8 AS start_time
"""


def short_version(server_version: str) -> str:
    """``15.18`` -> ``15.18.0``, ``17.10 (Debian ...)`` -> ``17.10.0``: semantic-version form."""
    numbers = re.match(r"\d+(?:\.\d+)*", server_version)
    if numbers is None:
        return server_version
    return ".".join((numbers.group(0).split(".") + ["0", "0"])[:3])


class SettingsCollector(Collector[PostgresSource]):
    name = "settings"
    tier = Tier.SLOW

    def collect(self, source: PostgresSource) -> list[Metric]:
        families: list[Metric] = []
        bad: list[str] = []
        for row in source.rows(SQL):
            try:
                value = to_base_unit(row["setting"], row["unit"], row["vartype"])
            except (TypeError, ValueError):  # a value that is no number (seen on managed services)
                bad.append(f"{row['name']}={row['setting']!r}")
                continue
            family = gauge(setting_name(row["name"], row["unit"]),
                           f"Server Parameter: {row['name']}: {row['short_desc'] or ''} (pg_settings, base units).")
            family.add_metric([], value)
            families.append(family)
        if bad:
            self.degrade("setting_unreadable", f"settings left out (not a number in their unit): {', '.join(bad)}")
        loaded = source.preloaded("pg_stat_statements")
        if loaded is None:
            self.degrade("insufficient_privilege", "shared_preload_libraries is hidden from this role, so "
                         "pg_settings_pg_stat_statements_loaded is left out: GRANT pg_read_all_settings "
                         "(or pg_monitor) TO the exporter's role")
        else:
            preload = gauge("pg_settings_pg_stat_statements_loaded",
                            "1 when pg_stat_statements is in shared_preload_libraries.")
            preload.add_metric([], 1.0 if loaded else 0.0)
            families.append(preload)
        version = gauge("pg_server_version_num", "server_version_num of the instance.")
        version.add_metric([], source.version)
        static = source.rows(STATIC_SQL)[0]
        info = untyped("pg_static", "Version string of the server (value 1; postgres_exporter's name).",
                     ["short_version", "version"])
        info.add_metric([short_version(static["server_version"]), static["version"]], 1)
        started = gauge("pg_postmaster_start_time_seconds",
                        "Time at which the postmaster started, Unix seconds (postgres_exporter's name).")
        started.add_metric([], static["start_time"])
        return families + [version, info, started]
