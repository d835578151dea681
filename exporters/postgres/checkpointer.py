"""Checkpointer and background writer activity, under the same names on every version.

PostgreSQL 17 moved the checkpoint columns from pg_stat_bgwriter to pg_stat_checkpointer
(``checkpoints_timed`` became ``num_timed``...) and dropped ``buffers_backend`` and
``buffers_backend_fsync``, whose equivalents are now the shared-buffer writes and fsyncs of every
other process in pg_stat_io. The families
keep postgres_exporter's ``pg_stat_bgwriter_*_total`` names so dashboards work on both sides
of the rename; times are converted from milliseconds to seconds.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import counter

__all__ = ["CheckpointerCollector", "checkpointer_sql"]

SQL_BEFORE_17 = """
SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time,
       buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync,
       buffers_alloc, extract(epoch FROM stats_reset)::float8 AS stats_reset
FROM pg_stat_bgwriter
"""

SQL_17 = """
SELECT c.num_timed AS checkpoints_timed, c.num_requested AS checkpoints_req,
       c.write_time AS checkpoint_write_time, c.sync_time AS checkpoint_sync_time,
       c.buffers_written AS buffers_checkpoint, b.buffers_clean, b.maxwritten_clean,
       io.writes AS buffers_backend, io.fsyncs AS buffers_backend_fsync,
       b.buffers_alloc, extract(epoch FROM b.stats_reset)::float8 AS stats_reset
FROM pg_stat_checkpointer AS c CROSS JOIN pg_stat_bgwriter AS b
CROSS JOIN (SELECT coalesce(sum(writes), 0) AS writes, coalesce(sum(fsyncs), 0) AS fsyncs FROM pg_stat_io
            WHERE object = 'relation' AND backend_type NOT IN ('checkpointer', 'background writer')) AS io
"""

# (column, family suffix, help, multiplier to base units); the write/sync times appear twice:
# in seconds, and in milliseconds under postgres_exporter's names
_FAMILIES: tuple[tuple[str, str, str, float], ...] = (
    ("checkpoints_timed", "checkpoints_timed_total", "Scheduled checkpoints (checkpoint_timeout)", 1.0),
    ("checkpoints_req", "checkpoints_req_total", "Requested checkpoints (max_wal_size, CHECKPOINT, ...)", 1.0),
    ("checkpoint_write_time", "checkpoint_write_time_seconds_total",
     "Time spent writing checkpoint files to disk", 1e-3),
    ("checkpoint_sync_time", "checkpoint_sync_time_seconds_total", "Time spent syncing checkpoint files to disk", 1e-3),
    ("checkpoint_write_time", "checkpoint_write_time_total",
     "Milliseconds spent writing checkpoint files to disk (postgres_exporter's unit)", 1.0),
    ("checkpoint_sync_time", "checkpoint_sync_time_total",
     "Milliseconds spent syncing checkpoint files to disk (postgres_exporter's unit)", 1.0),
    ("buffers_checkpoint", "buffers_checkpoint_total", "Buffers written by checkpoints", 1.0),
    ("buffers_clean", "buffers_clean_total", "Buffers written by the background writer", 1.0),
    ("maxwritten_clean", "maxwritten_clean_total",
     "Background writer rounds stopped for writing too many buffers", 1.0),
    ("buffers_backend", "buffers_backend_total",
     "Shared buffers written by backends themselves (17+: pg_stat_io writes)", 1.0),
    ("buffers_backend_fsync", "buffers_backend_fsync_total",
     "fsync calls backends had to make themselves (17+: pg_stat_io fsyncs)", 1.0),
    ("buffers_alloc", "buffers_alloc_total", "Buffers allocated", 1.0),
)


def checkpointer_sql(version: int) -> str:
    """The query for ``server_version_num`` ``version``."""
    return SQL_17 if version >= 170000 else SQL_BEFORE_17


class CheckpointerCollector(Collector[PostgresSource]):
    name = "checkpointer"
    tier = Tier.SLOW

    def collect(self, source: PostgresSource) -> list[Metric]:
        row = source.rows(checkpointer_sql(source.version))[0]
        families: list[Metric] = []
        for column, suffix, documentation, scale in _FAMILIES:
            family = counter(f"pg_stat_bgwriter_{suffix}", f"{documentation}.")
            family.add_metric([], float(row[column] or 0) * scale)
            families.append(family)
        reset = counter("pg_stat_bgwriter_stats_reset_total",
                        "Unix time these statistics were last reset (postgres_exporter's name).")
        if row["stats_reset"] is not None:
            reset.add_metric([], row["stats_reset"])
        return families + [reset]
