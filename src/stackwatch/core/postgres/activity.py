"""Connections against the slots ordinary roles may use: one pass over ``pg_stat_activity`` and
the limits, read by the exporter's activity collector and by ``stackwatch check`` alike.

Only client backends count: autovacuum, walsenders and background workers have their own
slots outside ``max_connections``. The capacity is ``max_connections -
superuser_reserved_connections - reserved_connections`` (the last exists from PostgreSQL 16
and reserves slots for ``pg_use_reserved_connections`` members): slots an application role can
never use are not capacity, so the ratio reaches 1 exactly when ordinary roles get refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ACTIVITY_SQL", "LIMITS_SQL", "OWN_APPLICATION", "Capacity", "Group", "capacity"]

#: the exporter's own connections, left out of the longest transaction/query numbers
OWN_APPLICATION = "stackwatch"

ACTIVITY_SQL = """
SELECT coalesce(datname, '') AS datname,
       coalesce(usename, '') AS usename,
       coalesce(application_name, '') AS application_name,
       coalesce(state, 'unknown') AS state,
       count(*) AS backends,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waiting,
       coalesce(max(extract(epoch FROM now() - xact_start))
                FILTER (WHERE application_name <> %(own)s), 0)::float8 AS max_tx_seconds,
       coalesce(max(extract(epoch FROM now() - query_start))
                FILTER (WHERE state = 'active' AND application_name <> %(own)s), 0)::float8 AS max_query_seconds,
       coalesce(max(extract(epoch FROM now() - state_change)), 0)::float8 AS max_state_seconds
FROM pg_stat_activity
WHERE backend_type = 'client backend'
   -- another role's session, as a role without pg_read_all_stats sees it: no type, no state
   OR (backend_type IS NULL AND datname IS NOT NULL AND usesysid IS NOT NULL)
GROUP BY 1, 2, 3, 4
"""

LIMITS_SQL = """
SELECT current_user AS role, pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS sees_all_sessions,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,
       (SELECT coalesce(json_agg(json_build_array(datname, datconnlimit) ORDER BY datname), '[]')
          FROM pg_database) AS databases,
       (SELECT coalesce(json_agg(json_build_array(rolname, rolconnlimit) ORDER BY rolconnlimit, rolname), '[]')
          FROM (SELECT rolname, rolconnlimit FROM pg_roles WHERE rolconnlimit >= 0
                ORDER BY rolconnlimit, rolname LIMIT %(max_roles)s) AS limited) AS roles
"""


@dataclass(frozen=True)
class Group:
    """One row of ``ACTIVITY_SQL``: the backends sharing database, user, application and state."""

    datname: str
    usename: str
    application_name: str
    state: str
    backends: int
    lock_waiting: int = 0
    max_tx_seconds: float = 0.0
    max_query_seconds: float = 0.0
    max_state_seconds: float = 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Group:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Capacity:
    """Client backends against the connection slots ordinary roles may use."""

    used: int
    max_connections: int
    reserved: int  # superuser_reserved_connections + reserved_connections

    @property
    def usable(self) -> int:
        return self.max_connections - self.reserved

    @property
    def ratio(self) -> float:
        """The saturation ratio: 1 exactly when ordinary roles get refused."""
        return self.used / self.usable if self.usable > 0 else 1.0


def capacity(groups: Sequence[Group], limits: dict[str, Any]) -> Capacity:
    """The :class:`Capacity` read by ``ACTIVITY_SQL`` (``groups``) and ``LIMITS_SQL`` (``limits``)."""
    return Capacity(sum(g.backends for g in groups), limits["max_connections"],
                    limits["superuser_reserved"] + limits["reserved"])
