"""Server identity, throughput counters, CPU, errors and the keyspace hit ratio (INFO).

The hit ratio is computed over the polling window (hits and misses since the previous poll),
because the lifetime ratio INFO implies hides a cache that went cold an hour ago. It leaves
out every TTL lookup (``PTTL``/``TTL`` calls from commandstats, in the same INFO), which Redis
counts as hits: the exporter's own TTL sampler, ``stackwatch check`` and any other sampler alike,
as the recording rules do (``stackwatch.promql.redis_lookup_rate``). The raw
``redis_keyspace_hits_total`` (redis_exporter's meaning) still includes them. The exporter's own
queue reads, measured by Redis itself, are left out of both counters and so of every ratio
(:mod:`stackwatch.core.redis.own_lookups`).
"""

from __future__ import annotations

import time

from prometheus_client.core import Metric

from stackwatch.core.redis.info import Info, parse_fields, parse_number
from stackwatch.core.redis.lookups import client_lookups, ttl_lookups
from stackwatch.core.redis.own_lookups import Lookups
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from ..families import counter, gauge
from .fields import Field, families_from, single

__all__ = ["StatsCollector"]

FIELDS = (
    Field("uptime_in_seconds", "redis_uptime_in_seconds", "Seconds since the server started."),
    Field("evicted_keys", "redis_evicted_keys_total", "Keys evicted because of maxmemory.", counter=True),
    Field("expired_keys", "redis_expired_keys_total", "Keys deleted because their TTL expired.", counter=True),
    Field("expired_stale_perc", "redis_expired_stale_percentage",
          "Estimated percentage of expired keys not yet deleted."),
    Field("total_commands_processed", "redis_commands_processed_total", "Commands processed.", counter=True),
    Field("total_connections_received", "redis_connections_received_total", "Connections accepted.", counter=True),
    Field("total_net_input_bytes", "redis_net_input_bytes_total", "Bytes read from the network.", counter=True),
    Field("total_net_output_bytes", "redis_net_output_bytes_total", "Bytes written to the network.", counter=True),
    Field("total_error_replies", "redis_total_error_replies", "Error replies sent.", counter=True),
    Field("used_cpu_sys", "redis_cpu_sys_seconds_total", "System CPU seconds of the server.", counter=True),
    Field("used_cpu_user", "redis_cpu_user_seconds_total", "User CPU seconds of the server.", counter=True),
    Field("used_cpu_sys_children", "redis_cpu_sys_children_seconds_total",
          "System CPU seconds of forked children.", counter=True),
    Field("used_cpu_user_children", "redis_cpu_user_children_seconds_total",
          "User CPU seconds of forked children.", counter=True),
    Field("used_cpu_sys_main_thread", "redis_cpu_sys_main_thread_seconds_total",
          "System CPU seconds of the main thread.", counter=True),
    Field("used_cpu_user_main_thread", "redis_cpu_user_main_thread_seconds_total",
          "User CPU seconds of the main thread.", counter=True),
    Field("process_id", "redis_process_id", "Process id of the server."),
    Field("cluster_enabled", "redis_cluster_enabled", "1 when cluster mode is on."),
    Field("io_threads_active", "redis_io_threads_active", "Whether the I/O threads are active."),
    Field("total_reads_processed", "redis_total_reads_processed", "Read events processed.", counter=True),
    Field("total_writes_processed", "redis_total_writes_processed", "Write events processed.", counter=True),
    Field("io_threaded_reads_processed", "redis_io_threaded_reads_processed",
          "Read events processed by I/O threads.", counter=True),
    Field("io_threaded_writes_processed", "redis_io_threaded_writes_processed",
          "Write events processed by I/O threads.", counter=True),
    Field("unexpected_error_replies", "redis_unexpected_error_replies",
          "Unexpected error replies (AOF load or replication errors).", counter=True),
    Field("dump_payload_sanitizations", "redis_dump_payload_sanitizations",
          "Deep payload sanitizations of RESTORE and replication.", counter=True),
    # redis_exporter exports these counters as gauges (two with `_total` in the name): same here
    Field("expired_time_cap_reached_count", "redis_expired_time_cap_reached_total",
          "Active expire cycles stopped by their time limit."),
    Field("migrate_cached_sockets", "redis_migrate_cached_sockets_total", "Sockets open for MIGRATE."),
    Field("active_defrag_hits", "redis_defrag_hits", "Values moved by active defragmentation."),
    Field("active_defrag_misses", "redis_defrag_misses", "Allocations active defragmentation skipped."),
    Field("active_defrag_key_hits", "redis_defrag_key_hits", "Keys active defragmentation worked on."),
    Field("active_defrag_key_misses", "redis_defrag_key_misses", "Keys active defragmentation skipped."),
    Field("pubsub_channels", "redis_pubsub_channels", "Pub/sub channels with subscribers."),
    Field("pubsub_patterns", "redis_pubsub_patterns", "Pub/sub patterns with subscribers."),
    # redis_exporter 1.46+ (Redis 7 fields)
    Field("pubsubshard_channels", "redis_pubsubshard_channels", "Sharded pub/sub channels with subscribers."),
    Field("current_eviction_exceeded_time", "redis_current_eviction_exceeded_time_ms",
          "Milliseconds used memory has been over maxmemory, now."),
    Field("total_eviction_exceeded_time", "redis_eviction_exceeded_time_ms_total",
          "Milliseconds used memory was over maxmemory.", counter=True),
    Field("evicted_clients", "redis_evicted_clients_total", "Clients evicted for maxmemory-clients.", counter=True),
    Field("expire_cycle_cpu_milliseconds", "redis_expire_cycle_cpu_time_ms_total",
          "Milliseconds of CPU spent in active expiry.", counter=True),
    Field("total_net_repl_input_bytes", "redis_net_repl_input_bytes_total", "Replication bytes read.", counter=True),
    Field("total_net_repl_output_bytes", "redis_net_repl_output_bytes_total", "Replication bytes written.",
          counter=True),
    Field("reply_buffer_shrinks", "redis_reply_buffer_shrinks_total", "Reply buffers shrunk.", counter=True),
    Field("reply_buffer_expands", "redis_reply_buffer_expands_total", "Reply buffers expanded.", counter=True),
)

_INFO_LABELS = ("role", "redis_version", "redis_mode", "server_name", "server_version", "os", "tcp_port",
                "run_id", "maxmemory_policy", "process_id", "redis_build_id")


def instance_info(info: Info) -> Metric:
    """``redis_instance_info``; Valkey is told apart by ``server_name`` and ``valkey_version``."""
    family = gauge("redis_instance_info", "Information about the Redis instance (value 1).", _INFO_LABELS)
    server_name = info.text("server_name") or "redis"
    server_version = info.text(f"{server_name}_version") or info.text("redis_version") or ""
    values = {"server_name": server_name, "server_version": server_version}
    family.add_metric([values.get(k, info.text(k) or "") for k in _INFO_LABELS], 1)
    return family


def error_stats(info: Info) -> Metric:
    """``redis_errors_total{err}`` from the errorstats section (Redis 6.2+)."""
    family = counter("redis_errors_total", "Error replies by error prefix.", ["err"])
    for key, value in info.section("errorstats").items():
        count = parse_number(parse_fields(value).get("count", ""))
        if key.startswith("errorstat_") and count is not None:
            family.add_metric([key[len("errorstat_"):]], count)
    return family


def keyspace_lookups(counters: Lookups) -> list[Metric]:
    """``keyspace_hits``/``keyspace_misses`` without the exporter's own queue reads."""
    return [single("redis_keyspace_hits_total", "Successful key lookups (the exporter's queue reads left out).",
                   counters.hits, is_counter=True),
            single("redis_keyspace_misses_total", "Failed key lookups (the exporter's queue reads left out).",
                   counters.misses, is_counter=True)]


def own_lookups(source: RedisSource) -> list[Metric]:
    """The exporter's own key lookups by reader: the TTL sampler's PTTLs (still inside the keyspace
    counters; the hit ratios leave out every TTL lookup) and the queue reads (left out of them)."""
    hits = counter("redis_exporter_keyspace_hits_total", "Key lookups by the exporter itself that hit.", ["reader"])
    misses = counter("redis_exporter_keyspace_misses_total", "Key lookups by the exporter itself that missed.",
                     ["reader"])
    for reader, lookups in (("queues", source.own.queues.total), ("ttl_sampler", source.own.ttl)):
        hits.add_metric([reader], lookups.hits)
        misses.add_metric([reader], lookups.misses)
    return [hits, misses]


class StatsCollector(Collector[RedisSource]):
    name = "stats"
    tier = Tier.FAST

    def __init__(self) -> None:
        self._previous: tuple[float, float, float] | None = None

    def hit_ratio(self, hits: float | None, misses: float | None, ttl_lookups: float) -> list[Metric]:
        """``redis_keyspace_hit_ratio`` over the window, leaving out the window's TTL lookups
        (see :func:`client_lookups`); absent on the first poll, after a restart (counters went
        down) and when the window had no client lookups."""
        if hits is None or misses is None:
            return []
        previous, self._previous = self._previous, (hits, misses, ttl_lookups)
        if previous is None:
            return []
        window = client_lookups(hits - previous[0], misses - previous[1], ttl_lookups - previous[2])
        if window is None:
            return []
        dh, dm = window
        return [single("redis_keyspace_hit_ratio",
                       "Share of key lookups that hit, over the last polling window.", dh / (dh + dm))]

    def collect(self, source: RedisSource) -> list[Metric]:
        info = source.info()
        families = families_from(info, FIELDS)
        uptime = info.number("uptime_in_seconds")
        if uptime is not None:
            families.append(single("redis_start_time_seconds", "Unix time the server started.",
                                   round(time.time() - uptime)))
        families.append(instance_info(info))
        families.append(error_stats(info))
        families += own_lookups(source)
        counters = source.keyspace()
        if counters is None:
            return families
        families += keyspace_lookups(counters)
        families += self.hit_ratio(counters.hits, counters.misses, ttl_lookups(info))
        return families
