"""RDB snapshots and the AOF: are they on, did the last one succeed, is one running (INFO persistence)."""

from __future__ import annotations

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from .fields import Field, families_from
from .source import RedisSource

__all__ = ["PersistenceCollector"]

FIELDS = (
    Field("loading", "redis_loading_dump_file", "Whether the server is loading a dump file."),
    Field("rdb_changes_since_last_save", "redis_rdb_changes_since_last_save", "Writes since the last RDB save."),
    Field("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress", "Whether an RDB save is running."),
    Field("rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds", "Unix time of the last successful RDB save."),
    Field("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status", "1 when the last RDB save succeeded.",
          status=True),
    Field("rdb_last_bgsave_time_sec", "redis_rdb_last_bgsave_duration_sec", "Duration of the last RDB save."),
    Field("aof_enabled", "redis_aof_enabled", "Whether the append-only file is on."),
    Field("aof_rewrite_in_progress", "redis_aof_rewrite_in_progress", "Whether an AOF rewrite is running."),
    Field("aof_last_bgrewrite_status", "redis_aof_last_bgrewrite_status", "1 when the last AOF rewrite succeeded.",
          status=True),
    Field("aof_last_write_status", "redis_aof_last_write_status", "1 when the last AOF write succeeded.",
          status=True),
    Field("latest_fork_usec", "redis_latest_fork_seconds", "Duration of the latest fork.", scale=1e-6),
)


class PersistenceCollector(Collector[RedisSource]):
    name = "persistence"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        return families_from(source.info(), FIELDS)
