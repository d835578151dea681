"""Per-database counters (pg_stat_database), the cache hit ratio over the window, and sizes.

Counters keep postgres_exporter's names and units (``pg_stat_database_blks_hit``,
``_blk_read_time`` in milliseconds, ``pg_stat_database_conflicts_confl_*`` from the conflicts view
joined in the same query...) and so stay untyped (no ``_total``). The hit ratio is computed
between two consecutive polls rather than since the last stats reset, so it shows what the cache
does now, not a lifetime average that hides a regression. Sizes walk every file of every
database, so they live in their own slow-tier collector: one query for all databases, never one
per database. The same query reads each database's transaction ID age (``age(datfrozenxid)``):
at 2^31 PostgreSQL stops accepting writes to avoid wraparound, and the age only moves as fast as
the slow tier needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import counter, gauge

__all__ = ["DatabaseCollector", "DatabaseSizeCollector", "HitWindow", "stat_sql"]

COUNTERS = ("xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
            "tup_inserted", "tup_updated", "tup_deleted", "conflicts", "temp_files", "temp_bytes", "deadlocks",
            "blk_read_time", "blk_write_time", "checksum_failures")
#: session counters, PostgreSQL 14+ (times in milliseconds, as postgres_exporter exports them)
SESSION_COUNTERS = ("session_time", "active_time", "idle_in_transaction_time", "sessions", "sessions_abandoned",
                    "sessions_fatal", "sessions_killed")
#: pg_stat_database_conflicts columns (queries canceled on a standby, by cause)
CONFLICTS = ("confl_tablespace", "confl_lock", "confl_snapshot", "confl_bufferpin", "confl_deadlock")
#: timestamps exported as Unix seconds; NULL (never reset, never failed) leaves the sample out
TIMESTAMPS = ("stats_reset", "checksum_last_failure")


def _columns(version: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(pg_stat_database counters, pg_stat_database_conflicts columns) of ``version``."""
    counters = COUNTERS + (SESSION_COUNTERS if version >= 140000 else ())
    conflicts = CONFLICTS + (("confl_active_logicalslot",) if version >= 160000 else ())
    return counters, conflicts


def stat_sql(version: int) -> str:
    """pg_stat_database joined with its conflicts view, for ``server_version_num`` ``version``.

    datname is NULL for the row of shared objects (PostgreSQL 12+): skipped, as stackwatch always did.
    """
    counters, conflicts = _columns(version)
    timestamps = ", ".join(f"extract(epoch FROM d.{c})::float8 AS {c}" for c in TIMESTAMPS)
    return f"""
SELECT d.datid::text AS datid, d.datname, d.numbackends, {", ".join(f"d.{c}" for c in counters)},
       {timestamps}, {", ".join(f"c.{c}" for c in conflicts)}
FROM pg_stat_database AS d LEFT JOIN pg_stat_database_conflicts AS c ON c.datid = d.datid
WHERE d.datname IS NOT NULL ORDER BY d.datname
"""


SIZE_SQL = ("SELECT datname, pg_database_size(oid) AS bytes, age(datfrozenxid)::float8 AS xid_age "
            "FROM pg_database ORDER BY datname")

_HELP = {
    "xact_commit": "Transactions committed",
    "xact_rollback": "Transactions rolled back",
    "blks_read": "Disk blocks read (not found in shared buffers)",
    "blks_hit": "Disk blocks found in shared buffers",
    "tup_returned": "Rows returned by queries",
    "tup_fetched": "Rows fetched by queries",
    "tup_inserted": "Rows inserted",
    "tup_updated": "Rows updated",
    "tup_deleted": "Rows deleted",
    "conflicts": "Queries canceled due to conflicts with recovery (standbys)",
    "temp_files": "Temporary files created by queries",
    "temp_bytes": "Bytes written to temporary files by queries",
    "deadlocks": "Deadlocks detected",
    "blk_read_time": "Milliseconds spent reading data file blocks (needs track_io_timing)",
    "blk_write_time": "Milliseconds spent writing data file blocks (needs track_io_timing)",
    "checksum_failures": "Data page checksum failures",
    "session_time": "Milliseconds spent by sessions",
    "active_time": "Milliseconds spent executing statements",
    "idle_in_transaction_time": "Milliseconds spent idle in a transaction",
    "sessions": "Sessions established",
    "sessions_abandoned": "Sessions ended because the client disconnected",
    "sessions_fatal": "Sessions ended by fatal errors",
    "sessions_killed": "Sessions ended by operator intervention",
    "stats_reset": "Unix time the statistics were last reset",
    "checksum_last_failure": "Unix time of the last data page checksum failure",
    "confl_tablespace": "Queries canceled because of dropped tablespaces",
    "confl_lock": "Queries canceled because of lock timeouts",
    "confl_snapshot": "Queries canceled because of old snapshots",
    "confl_bufferpin": "Queries canceled because of pinned buffers",
    "confl_deadlock": "Queries canceled because of deadlocks",
    "confl_active_logicalslot": "Uses of logical slots canceled because of old snapshots or too low wal_level",
}


@dataclass(frozen=True)
class _Blocks:
    hit: int
    read: int


class HitWindow:
    """Cache hit ratio per database between consecutive polls.

    A database gets no ratio on its first poll, when no block was accessed during the window
    (0/0 says nothing), or when its counters went backwards (stats reset): absent beats a made-up
    number, and the alert on it then simply waits for the next window.
    """

    def __init__(self) -> None:
        self._previous: dict[str, _Blocks] = {}

    def update(self, blocks: Mapping[str, tuple[int, int]]) -> dict[str, float]:
        """Take ``{datname: (blks_hit, blks_read)}`` and return ``{datname: ratio}``."""
        ratios: dict[str, float] = {}
        current = {name: _Blocks(hit, read) for name, (hit, read) in blocks.items()}
        for name, now in current.items():
            before = self._previous.get(name)
            if before is None:
                continue
            hit, read = now.hit - before.hit, now.read - before.read
            if hit < 0 or read < 0 or hit + read == 0:
                continue
            ratios[name] = hit / (hit + read)
        self._previous = current
        return ratios


class DatabaseCollector(Collector[PostgresSource]):
    name = "database"
    tier = Tier.FAST

    def __init__(self) -> None:
        self.window = HitWindow()

    def collect(self, source: PostgresSource) -> list[Metric]:
        rows = source.rows(stat_sql(source.version))
        counters, conflicts = _columns(source.version)
        labels = ["datid", "datname"]
        numbackends = gauge("pg_stat_database_numbackends", "Backends connected to the database (pg_stat_database).",
                            labels)
        families: list[Metric] = [numbackends]
        columns = [(f"pg_stat_database_{c}", c) for c in counters + TIMESTAMPS]
        columns += [(f"pg_stat_database_conflicts_{c}", c) for c in conflicts]
        for name, column in columns:
            family = counter(name, f"{_HELP[column]} (pg_stat_database).", labels)
            for row in rows:
                if row[column] is None and column in TIMESTAMPS:
                    continue  # never reset / never failed: absent rather than a made-up time
                family.add_metric([row["datid"], row["datname"]], row[column] or 0)
            families.append(family)
        for row in rows:
            numbackends.add_metric([row["datid"], row["datname"]], row["numbackends"])
        if "active_time" in counters:  # postgres_exporter 0.20's name for it, in seconds
            active = counter("pg_stat_database_active_time_seconds_total",
                             "Time spent executing statements (pg_stat_database).", labels)
            for row in rows:
                active.add_metric([row["datid"], row["datname"]], (row["active_time"] or 0) / 1000)
            families.append(active)
        ratio = gauge("pg_stat_database_cache_hit_ratio",
                      "blks_hit / (blks_hit + blks_read) between the last two polls; absent on the first "
                      "poll and when no block was accessed.", ["datname"])
        for datname, value in sorted(self.window.update(
                {r["datname"]: (r["blks_hit"] or 0, r["blks_read"] or 0) for r in rows}).items()):
            ratio.add_metric([datname], value)
        return families + [ratio]


class DatabaseSizeCollector(Collector[PostgresSource]):
    name = "database_size"
    tier = Tier.SLOW

    def collect(self, source: PostgresSource) -> list[Metric]:
        size = gauge("pg_database_size_bytes", "Disk space used by the database.", ["datname"])
        xid_age = gauge("pg_database_datfrozenxid_age", "Transactions since the database's oldest unfrozen "
                        "transaction ID (age(datfrozenxid)); wraparound protection stops writes at 2^31.",
                        ["datname"])
        for row in source.rows(SIZE_SQL):
            size.add_metric([row["datname"]], row["bytes"])
            xid_age.add_metric([row["datname"]], row["xid_age"])
        return [size, xid_age]
