"""Per-database counters (pg_stat_database), the cache hit ratio over the window, and sizes.

Counters keep postgres_exporter's names (``pg_stat_database_blks_hit``...) and so stay untyped
(no ``_total``). The hit ratio is computed between two consecutive polls rather than since the
last stats reset, so it shows what the cache does now, not a lifetime average that hides a
regression. Sizes walk every file of every database, so they live in their own slow-tier
collector: one query for all databases, never one per database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from ..families import counter, gauge
from .source import PostgresSource

__all__ = ["DatabaseCollector", "DatabaseSizeCollector", "HitWindow"]

COUNTERS = ("xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
            "tup_inserted", "tup_updated", "tup_deleted", "conflicts", "temp_files", "temp_bytes", "deadlocks")

# datname is NULL for the row of shared objects (PostgreSQL 12+); postgres_exporter skips it too
STAT_SQL = f"""
SELECT datid::text AS datid, datname, {", ".join(COUNTERS)}
FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname
"""

SIZE_SQL = "SELECT datname, pg_database_size(oid) AS bytes FROM pg_database ORDER BY datname"

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
        rows = source.rows(STAT_SQL)
        families: list[Metric] = []
        for column in COUNTERS:
            family = counter(f"pg_stat_database_{column}", f"{_HELP[column]} (pg_stat_database).",
                             ["datid", "datname"])
            for row in rows:
                family.add_metric([row["datid"], row["datname"]], row[column] or 0)
            families.append(family)
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
        for row in source.rows(SIZE_SQL):
            size.add_metric([row["datname"]], row["bytes"])
        return [size]
