"""Connections and pool saturation: who is connected, in which state, and for how long.

Two queries per poll: one pass over ``pg_stat_activity`` grouped by database, user,
application and state (every backend family is derived from those groups), and one for the
limits (``max_connections`` and the reserved slots, per-database and per-role limits).

Only client backends count: autovacuum, walsenders and background workers have their own
slots outside ``max_connections``. The saturation ratio's capacity is ``max_connections -
superuser_reserved_connections - reserved_connections`` (the last exists from PostgreSQL 16
and reserves slots for ``pg_use_reserved_connections`` members): slots an application role can
never use are not capacity, so the ratio reaches 1 exactly when ordinary roles get refused.

A role without ``pg_read_all_stats`` (``pg_monitor`` includes it) sees other roles' sessions in
``pg_stat_activity`` without their type, state or times: they are counted (state ``unknown``) so
the saturation stays right, but states and ages cover its own sessions only, so the collector
reports itself ``degraded{reason="insufficient_privilege"}`` and says what to grant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from prometheus_client.core import Metric

from stackwatch.core.postgres.activity import ACTIVITY_SQL, LIMITS_SQL, OWN_APPLICATION, Group, capacity
from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["ActivityCollector", "cap_clients"]

#: labels of the (usename, application_name) pairs beyond the cap: PostgreSQL reserves role
#: names starting with ``pg_``, so no real session (not even a role called other) shares them
OTHER_USER, OTHER = "pg_other", "other"
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")

#: how long client backends have lived, per database: a pool's connections live for hours, a
#: client that connects per request leaves only backends a second old (the churn signal that
#: PostgreSQL 13, without pg_stat_database.sessions, also has)
AGES_SQL = """
SELECT coalesce(datname, '') AS datname,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM now() - backend_start))::float8 AS median
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND backend_start IS NOT NULL AND application_name <> %(own)s
GROUP BY 1
"""


def cap_clients(groups: Sequence[Group], limit: int) -> Counter[tuple[str, str, str, str]]:
    """Backend counts by (datname, usename, application_name, state) with at most ``limit``
    distinct (usename, application_name) pairs: the pairs with the most backends keep their
    names (ties by name, so the choice is stable), the rest become ``pg_other``/``other``."""
    per_client: Counter[tuple[str, str]] = Counter()
    for g in groups:
        per_client[(g.usename, g.application_name)] += g.backends
    ranked = sorted(per_client, key=lambda c: (-per_client[c], c))
    kept = set(ranked[:limit])
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for g in groups:
        user, app = (g.usename, g.application_name) if (g.usename, g.application_name) in kept else (OTHER_USER, OTHER)
        counts[(g.datname, user, app, g.state)] += g.backends
    return counts


class ActivityCollector(Collector[PostgresSource]):
    name = "activity"
    tier = Tier.FAST

    def __init__(self, max_clients: int = 50, max_roles: int = 100) -> None:
        self.max_clients = max_clients
        self.max_roles = max_roles

    def collect(self, source: PostgresSource) -> list[Metric]:
        groups = [Group.from_row(r) for r in source.rows(ACTIVITY_SQL, {"own": OWN_APPLICATION})]
        limits = source.rows(LIMITS_SQL, {"max_roles": self.max_roles})[0]
        if not limits["sees_all_sessions"]:
            self.degrade("insufficient_privilege",
                         "pg_stat_activity hides the state and times of other roles' sessions from role "
                         f"{limits['role']!r}: they count as state 'unknown', and idle-in-transaction "
                         "and ages cover its own sessions only; "
                         f"GRANT pg_monitor (or pg_read_all_stats) TO {limits['role']}")
        ages = gauge("pg_stat_activity_client_backend_median_age_seconds", "Median age of the client backends "
                     "connected to each database (exporter excluded): seconds when clients connect per request.",
                     ["datname"])
        for row in source.rows(AGES_SQL, {"own": OWN_APPLICATION}):
            ages.add_metric([row["datname"]], row["median"])
        return self.backend_families(groups) + self.limit_families(groups, limits) + [ages]

    def backend_families(self, groups: Sequence[Group]) -> list[Metric]:
        count = gauge("pg_stat_activity_count", "Client backends by database, user, application and state "
                      "(user/application pairs beyond the cap are rolled into `other`).",
                      ["datname", "usename", "application_name", "state"])
        for labels, n in sorted(cap_clients(groups, self.max_clients).items()):
            count.add_metric(list(labels), n)
        waiting = gauge("pg_stat_activity_lock_waiting_backends", "Client backends waiting for a heavyweight lock.")
        waiting.add_metric([], sum(g.lock_waiting for g in groups))
        idle_tx = [g for g in groups if g.state in IDLE_IN_TRANSACTION]
        idle_count = gauge("pg_stat_activity_idle_in_transaction_backends",
                           "Client backends idle inside an open transaction.")
        idle_count.add_metric([], sum(g.backends for g in idle_tx))
        idle_max = gauge("pg_stat_activity_idle_in_transaction_max_seconds",
                         "Longest time a backend has been idle in transaction (0 when none).")
        idle_max.add_metric([], max((g.max_state_seconds for g in idle_tx), default=0.0))
        max_tx = gauge("pg_stat_activity_max_tx_duration", "Age in seconds of the oldest open transaction per "
                       "database and backend state (exporter excluded).", ["datname", "state"])
        max_query = gauge("pg_stat_activity_max_query_duration_seconds",
                          "Age of the longest running (active) query per database (exporter excluded).", ["datname"])
        tx_by_state: dict[tuple[str, str], float] = {}
        query_by_db: dict[str, float] = {}
        for g in groups:
            key = (g.datname, g.state)
            tx_by_state[key] = max(tx_by_state.get(key, 0.0), g.max_tx_seconds)
            query_by_db[g.datname] = max(query_by_db.get(g.datname, 0.0), g.max_query_seconds)
        for key in sorted(tx_by_state):
            max_tx.add_metric(list(key), tx_by_state[key])
        for datname in sorted(query_by_db):
            max_query.add_metric([datname], query_by_db[datname])
        return [count, waiting, idle_count, idle_max, max_tx, max_query]

    def limit_families(self, groups: Sequence[Group], limits: dict[str, Any]) -> list[Metric]:
        slots = capacity(groups, limits)
        used = gauge("pg_connections_used", "Client backends using max_connections slots.")
        used.add_metric([], slots.used)
        saturation = gauge("pg_connections_saturation_ratio",
                           "Client backends / (max_connections - superuser_reserved_connections - "
                           "reserved_connections); 1 means ordinary roles are refused.")
        saturation.add_metric([], slots.ratio)
        db_limit = gauge("pg_database_connection_limit",
                         "Connection limit of the database (datconnlimit; -1 = no limit).", ["datname"])
        for datname, limit in limits["databases"]:
            db_limit.add_metric([datname], limit)
        role_limit = gauge("pg_role_connection_limit",
                           "Connection limit of roles that have one (rolconnlimit), the tightest first.",
                           ["rolname"])
        roles_limit = gauge("pg_roles_connection_limit", "The same limits under postgres_exporter's name "
                            "(roles without a limit are left out).", ["rolname"])
        for rolname, limit in limits["roles"]:
            role_limit.add_metric([rolname], limit)
            roles_limit.add_metric([rolname], limit)
        return [used, saturation, db_limit, role_limit, roles_limit]
