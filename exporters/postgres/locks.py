"""Heavyweight locks: held and awaited by mode, backends blocked by others, the oldest wait.

``pg_blocking_pids`` briefly takes the lock manager's partition locks, so it is called only for
backends already waiting on a lock, never for every backend. The oldest wait comes from
``pg_locks.waitstart`` (PostgreSQL 14+); PostgreSQL 13 has no wait start, so there it is the
age of the waiting backend's current query, an upper bound (the wait began after the query).
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["LocksCollector", "waits_sql"]

# locks without a database (transaction ids, shared catalogs) get datname=""
COUNT_SQL = """
SELECT coalesce(d.datname, '') AS datname, l.mode, l.granted, count(*) AS locks
FROM pg_locks AS l LEFT JOIN pg_database AS d ON d.oid = l.database
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

_BLOCKED = """(SELECT count(*) FROM pg_stat_activity
 WHERE wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0) AS blocked"""

_OLDEST_WAITSTART = """(SELECT coalesce(max(extract(epoch FROM now() - waitstart)), 0)::float8
 FROM pg_locks WHERE NOT granted) AS oldest_wait_seconds"""

_OLDEST_QUERY_START = """(SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0)::float8
 FROM pg_stat_activity WHERE wait_event_type = 'Lock') AS oldest_wait_seconds"""


def waits_sql(version: int) -> str:
    """The blocked-backends and oldest-wait query for ``server_version_num`` ``version``."""
    oldest = _OLDEST_WAITSTART if version >= 140000 else _OLDEST_QUERY_START
    return f"SELECT {_BLOCKED},\n{oldest}"


class LocksCollector(Collector[PostgresSource]):
    name = "locks"
    tier = Tier.FAST

    def collect(self, source: PostgresSource) -> list[Metric]:
        count = gauge("pg_locks_count", "Heavyweight locks by database, mode and whether granted (pg_locks).",
                      ["datname", "mode", "granted"])
        for row in source.rows(COUNT_SQL):
            count.add_metric([row["datname"], row["mode"], "true" if row["granted"] else "false"], row["locks"])
        waits = source.rows(waits_sql(source.version))[0]
        blocked = gauge("pg_locks_blocked_backends", "Backends waiting for a lock held by another backend.")
        blocked.add_metric([], waits["blocked"])
        oldest = gauge("pg_locks_oldest_wait_seconds",
                       "How long the oldest lock wait has lasted (0 when nobody waits; PostgreSQL 13: age "
                       "of the waiting query).")
        oldest.add_metric([], waits["oldest_wait_seconds"])
        return [count, blocked, oldest]
