"""Server identity, throughput counters, CPU, errors and the keyspace hit ratio (INFO).

The hit ratio is computed over the polling window (hits and misses since the previous poll),
because the lifetime ratio INFO implies hides a cache that went cold an hour ago. It leaves
out the TTL sampler's own PTTL lookups, which Redis counts as hits; the raw
``redis_keyspace_hits_total`` (redis_exporter's meaning) still includes them.
"""

from __future__ import annotations

import time

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from ..families import counter, gauge
from .fields import Field, families_from, single
from .info import Info, parse_fields, parse_number
from .source import RedisSource

__all__ = ["StatsCollector"]

FIELDS = (
    Field("uptime_in_seconds", "redis_uptime_in_seconds", "Seconds since the server started."),
    Field("keyspace_hits", "redis_keyspace_hits_total", "Successful key lookups.", counter=True),
    Field("keyspace_misses", "redis_keyspace_misses_total", "Failed key lookups.", counter=True),
    Field("evicted_keys", "redis_evicted_keys_total", "Keys evicted because of maxmemory.", counter=True),
    Field("expired_keys", "redis_expired_keys_total", "Keys deleted because their TTL expired.", counter=True),
    Field("expired_stale_perc", "redis_expired_stale_percentage", "Estimated percentage of expired keys not yet deleted."),
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
)

_INFO_LABELS = ("role", "redis_version", "redis_mode", "server_name", "server_version", "os", "tcp_port",
                "run_id", "maxmemory_policy")


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


def own_lookups(source: RedisSource) -> list[Metric]:
    """The exporter's own key lookups (TTL sampler PTTLs), which Redis counts in keyspace_hits
    and keyspace_misses: rules subtract them (``stackwatch.promql.redis_lookup_rate``)."""
    hits = counter("redis_exporter_keyspace_hits_total", "Key lookups by the exporter itself that hit.")
    hits.add_metric([], source.own.hits)
    misses = counter("redis_exporter_keyspace_misses_total", "Key lookups by the exporter itself that missed.")
    misses.add_metric([], source.own.misses)
    return [hits, misses]


class StatsCollector(Collector[RedisSource]):
    name = "stats"
    tier = Tier.FAST

    def __init__(self) -> None:
        self._previous: tuple[float, float] | None = None

    def hit_ratio(self, hits: float | None, misses: float | None) -> list[Metric]:
        """``redis_keyspace_hit_ratio`` over the window, given hits and misses net of the
        exporter's own lookups; absent on the first poll, after a restart (counters went
        down) and when the window had no lookups."""
        if hits is None or misses is None:
            return []
        previous, self._previous = self._previous, (hits, misses)
        if previous is None:
            return []
        dh, dm = hits - previous[0], misses - previous[1]
        if dh < 0 or dm < 0 or dh + dm == 0:
            return []
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
        hits, misses = info.number("keyspace_hits"), info.number("keyspace_misses")
        if hits is not None and misses is not None:
            hits, misses = hits - source.own.hits, misses - source.own.misses
        families += self.hit_ratio(hits, misses)
        return families
