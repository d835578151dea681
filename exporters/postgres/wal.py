"""WAL on disk: segment files in pg_wal and their total size (postgres_exporter's ``pg_wal_*``).

WAL that cannot be recycled (a stuck replication slot, failing archiving, a huge
``wal_keep_size``) fills the disk the database lives on; this is the direct measure of it.
``pg_ls_waldir()`` lists the directory (``pg_monitor`` may call it); only segment files count.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["WalCollector"]

SQL = """
SELECT count(*) AS segments, coalesce(sum(size), 0) AS size_bytes
FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'
"""


class WalCollector(Collector[PostgresSource]):
    name = "wal"
    tier = Tier.FAST

    def collect(self, source: PostgresSource) -> list[Metric]:
        row = source.rows(SQL)[0]
        segments = gauge("pg_wal_segments", "WAL segment files in pg_wal.")
        segments.add_metric([], row["segments"])
        size = gauge("pg_wal_size_bytes", "Total size of the WAL segment files in pg_wal.")
        size.add_metric([], row["size_bytes"])
        return [segments, size]
