"""WAL archiving: segments archived, failed attempts, and how long since the last success.

postgres_exporter's ``pg_stat_archiver_*`` families. A failing ``archive_command`` keeps WAL on
the primary's disk until it fills, so the failure count and the age of the last success are what
to watch. One row, one small query per fast poll.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import counter, gauge

__all__ = ["ArchiverCollector"]

SQL = """
SELECT archived_count, failed_count,
       extract(epoch FROM now() - last_archived_time)::float8 AS last_archive_age
FROM pg_stat_archiver
"""


class ArchiverCollector(Collector[PostgresSource]):
    name = "archiver"
    tier = Tier.FAST

    def collect(self, source: PostgresSource) -> list[Metric]:
        row = source.rows(SQL)[0]
        archived = counter("pg_stat_archiver_archived_count", "WAL segments archived successfully.")
        archived.add_metric([], row["archived_count"])
        failed = counter("pg_stat_archiver_failed_count", "Failed attempts to archive a WAL segment.")
        failed.add_metric([], row["failed_count"])
        age = gauge("pg_stat_archiver_last_archive_age",
                    "Seconds since the last WAL segment was archived; absent when none ever was.")
        if row["last_archive_age"] is not None:
            age.add_metric([], row["last_archive_age"])
        return [archived, failed, age]
