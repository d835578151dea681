"""RDB snapshots and the AOF: are they on, did the last one succeed, is one running (INFO persistence)."""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from .fields import Field, families_from

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
    Field("rdb_current_bgsave_time_sec", "redis_rdb_current_bgsave_duration_sec",
          "Duration of the running RDB save (-1 when none)."),
    Field("rdb_last_cow_size", "redis_rdb_last_cow_size_bytes", "Copy-on-write bytes of the last RDB save."),
    Field("aof_rewrite_scheduled", "redis_aof_rewrite_scheduled", "Whether an AOF rewrite is scheduled."),
    Field("aof_last_rewrite_time_sec", "redis_aof_last_rewrite_duration_sec", "Duration of the last AOF rewrite."),
    Field("aof_current_rewrite_time_sec", "redis_aof_current_rewrite_duration_sec",
          "Duration of the running AOF rewrite (-1 when none)."),
    Field("aof_last_cow_size", "redis_aof_last_cow_size_bytes", "Copy-on-write bytes of the last AOF rewrite."),
    Field("module_fork_in_progress", "redis_module_fork_in_progress", "Whether a module fork is running."),
    Field("module_fork_last_cow_size", "redis_module_fork_last_cow_size",
          "Copy-on-write bytes of the last module fork."),
    # redis_exporter 1.46+ (Redis 7 fields); it exports rdb_saves as a gauge
    Field("async_loading", "redis_async_loading", "Whether the dataset is being loaded without blocking."),
    Field("rdb_saves", "redis_rdb_saves_total", "RDB saves since the start."),
    Field("rdb_last_load_keys_expired", "redis_rdb_last_load_expired_keys", "Keys expired during the last load."),
    Field("rdb_last_load_keys_loaded", "redis_rdb_last_load_loaded_keys", "Keys loaded by the last load."),
)


class PersistenceCollector(Collector[RedisSource]):
    name = "persistence"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        return families_from(source.info(), FIELDS)
