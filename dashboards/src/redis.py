"""Redis: does the cache work (hit ratio), does it fit (memory, evictions), and is it healthy?

Hit ratio against the checklist's 80% target, memory against maxmemory, evictions and
expirations, clients, per-command rates and latency, and TTL hygiene from the exporter's key
sample. Every series has a ``server`` label naming the Redis server.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from stackwatch.promql import redis_lookup_rate
from stackwatch.thresholds import REDIS

from ..common import (
    Grid,
    dashboard,
    label_variable,
    no_threshold,
    q,
    selector,
    stat,
    state_mapping,
    timeseries,
    too_high,
    too_low,
)

__all__ = ["build"]

S = selector("job", "instance", "server")
WINDOW = "$__rate_interval"


def _overview(g: Grid) -> None:
    g.row("Overview")
    g.add(stat("Redis up", "Can the exporter connect and run INFO?", f"min(redis_up{{{S}}})", "none",
               too_low(1), mappings=state_mapping(1, "UP", "DOWN")), w=4, h=4)
    g.add(stat("Keyspace hit ratio", "Share of key lookups that found the key over 5 minutes (recorded); "
               "green at the checklist's target.", f"min(instance:redis_keyspace_hits:ratio_rate5m{{{S}}})",
               "percentunit", too_low(REDIS.hit_ratio)), w=5, h=4)
    g.add(stat("Memory used of maxmemory", "Highest memory saturation; 'no maxmemory' means Redis may grow "
               "until the host runs out of memory.", f"max(redis_memory_saturation_ratio{{{S}}})", "percentunit",
               too_high(REDIS.memory_saturation), no_value="no maxmemory"), w=5, h=4)
    g.add(stat("Connected clients", "Client connections right now.",
               f"sum(redis_connected_clients{{{S}}})", "short", no_threshold()), w=5, h=4)
    g.add(stat("Eviction policy", "maxmemory-policy: what Redis drops when memory is full.",
               q(f"max by (policy) (redis_config_maxmemory_policy_info{{{S}}})", "{{policy}}"), "none",
               no_threshold(), textMode="name"), w=5, h=4)


def _cache_effectiveness(g: Grid) -> None:
    g.row("Cache effectiveness")
    g.add(timeseries("Keyspace hit ratio", "Is the cache answering? Below the dashed line (the checklist's "
                     "80% target) most reads fall through to the database.", [
        (f"instance:redis_keyspace_hits:ratio_rate5m{{{S}}}", "{{server}}"),
    ], "percentunit", thresholds=too_low(REDIS.hit_ratio)), w=12)
    g.add(timeseries("Lookups: hits and misses", "Key lookups per second by outcome, TTL lookups (PTTL/TTL: "
                     "TTL sampling) left out as in the hit ratio.", [
        (redis_lookup_rate("hits", None, WINDOW, f"{{{S}}}"), "hits"),
        (redis_lookup_rate("misses", None, WINDOW, f"{{{S}}}"), "misses"),
    ], "ops", stacked=True), w=12)


def _memory(g: Grid) -> None:
    g.row("Memory")
    g.add(timeseries("Memory used vs maxmemory", "Does the data set fit? With no maxmemory only the used line "
                     "shows.", [
        (f"sum by (server) (redis_memory_used_bytes{{{S}}})", "{{server}} used"),
        q(f"sum by (server) (redis_memory_max_bytes{{{S}}}) > 0", "{{server}} maxmemory",
          empty_reason="maxmemory is not set (unlimited)"),
    ], "bytes"), w=8)
    g.add(timeseries("Memory saturation", "Used memory over maxmemory; past the dashed line evictions or "
                     "OOM write errors are close.", [
        q(f"redis_memory_saturation_ratio{{{S}}}", "{{server}}", empty_reason="maxmemory is not set (unlimited)"),
    ], "percentunit", thresholds=too_high(REDIS.memory_saturation)), w=8)
    g.add(timeseries("Evictions and expirations", "Evictions mean the working set no longer fits; "
                     "expirations are TTLs doing their job.", [
        (f"sum(rate(redis_evicted_keys_total{{{S}}}[{WINDOW}]))", "evicted"),
        (f"sum(rate(redis_expired_keys_total{{{S}}}[{WINDOW}]))", "expired"),
    ], "ops", thresholds=too_high(REDIS.evictions_per_second)), w=8)
    g.add(timeseries("Fragmentation ratio", "RSS over used memory: far above 1 wastes memory, below 1 means "
                     "Redis is swapping.", [
        (f"redis_mem_fragmentation_ratio{{{S}}}", "{{server}}"),
    ], "short", min_zero=False), w=12)
    g.add(timeseries("Keys by database", "Keys stored and how many of them have a TTL.", [
        (f"sum by (db) (redis_db_keys{{{S}}})", "{{db}} keys"),
        (f"sum by (db) (redis_db_keys_expiring{{{S}}})", "{{db}} with TTL"),
    ], "short"), w=12)


def _clients_and_commands(g: Grid) -> None:
    g.row("Clients and commands")
    g.add(timeseries("Clients", "Connected and blocked clients against maxclients.", [
        (f"sum(redis_connected_clients{{{S}}})", "connected"),
        (f"sum(redis_blocked_clients{{{S}}})", "blocked"),
        (f"max(redis_config_maxclients{{{S}}})", "maxclients"),
    ], "short"), w=8)
    g.add(timeseries("Rejected connections", "Clients refused because maxclients was reached: each one got "
                     "an error.", [
        (f"sum(increase(redis_rejected_connections_total{{{S}}}[{WINDOW}]))", "rejected"),
    ], "short", thresholds=too_high(REDIS.rejected_connections), drawStyle="bars"), w=8)
    g.add(timeseries("Commands per second (top 10)", "Which commands make the load?", [
        (f"topk(10, sum by (cmd) (rate(redis_commands_total{{{S}}}[{WINDOW}])))", "{{cmd}}"),
    ], "ops", stacked=True), w=8)
    g.add(timeseries("Command latency p99 (server side)", "99th percentile execution time per command "
                     "from LATENCYSTATS (Redis 7+); network time is not included.", [
        (f'max by (cmd) (redis_command_latency_seconds{{{selector("job", "instance", "server", quantile="0.99")}}})',
         "{{cmd}}"),
    ], "s"), w=12)
    g.add(timeseries("Mean command time", "Mean execution time per command from INFO commandstats.", [
        (f"sum by (cmd) (rate(redis_commands_duration_seconds_total{{{S}}}[{WINDOW}])) / "
         f"sum by (cmd) (rate(redis_commands_total{{{S}}}[{WINDOW}]) > 0)", "{{cmd}}"),
    ], "s"), w=12)


def _ttl_hygiene(g: Grid) -> None:
    g.row("TTL hygiene")
    g.add(timeseries("Keys without TTL by prefix", "Share of sampled keys that never expire, per key prefix; "
                     "past the dashed line some writer forgot its TTL.", [
        (f"redis_ttl_keys_without_ttl_ratio{{{S}}}", "{{prefix}}"),
    ], "percentunit", thresholds=too_high(REDIS.keys_without_ttl_ratio)), w=12)
    g.add(timeseries("Keys without TTL (estimated)", "The sample's ratio applied to the key count.", [
        (f"sum by (prefix) (redis_ttl_keys_without_ttl_estimated{{{S}}})", "{{prefix}}"),
        (f"sum(redis_ttl_keys_sampled{{{S}}})", "keys sampled"),
    ], "short"), w=12)


def _server_persistence_replication(g: Grid) -> None:
    g.row("Server, network, persistence, replication")
    g.add(stat("Version and role", "Which Redis (or Valkey) version runs, as primary (master) or replica?",
               q(f"max by (redis_version, role) (redis_instance_info{{{S}}})", "{{redis_version}} {{role}}"),
               "none", no_threshold(), textMode="name"), w=6, h=4)
    g.add(stat("Uptime", "Since when has the server been running? A short uptime after a crash means an "
               "empty cache (and lost data without persistence).", f"min(redis_uptime_in_seconds{{{S}}})", "s",
               no_threshold()), w=6, h=4)
    g.add(stat("Last RDB save", "Did the last background save succeed? A failed one makes Redis refuse writes "
               "(stop-writes-on-bgsave-error).", f"min(redis_rdb_last_bgsave_status{{{S}}})", "none",
               too_low(1), mappings=state_mapping(1, "ok", "FAILED")), w=6, h=4)
    g.add(stat("Last AOF write", "Did the last append-only file write succeed (ok when AOF is off)?",
               f"min(redis_aof_last_write_status{{{S}}})", "none", too_low(1),
               mappings=state_mapping(1, "ok", "FAILED")), w=6, h=4)
    g.add(timeseries("Network I/O", "Bytes received from and sent to clients: large values per command "
                     "point at big keys or unbounded reads (KEYS, HGETALL, LRANGE 0 -1).", [
        (f"sum(rate(redis_net_input_bytes_total{{{S}}}[{WINDOW}]))", "in"),
        (f"sum(rate(redis_net_output_bytes_total{{{S}}}[{WINDOW}]))", "out"),
    ], "Bps"), w=8)
    g.add(timeseries("Unsaved changes", "Writes since the last RDB save: what a crash would lose without "
                     "AOF.", [
        (f"max by (server) (redis_rdb_changes_since_last_save{{{S}}})", "{{server}} changes"),
    ], "short"), w=8)
    g.add(timeseries("Replication", "Replicas connected to each primary and how far each lags (bytes not "
                     "yet acknowledged); on a replica, whether its link to the primary is up.", [
        (f"max by (server) (redis_connected_slaves{{{S}}})", "{{server}} replicas"),
        q(f"max by (server, replica) (redis_replication_offset_lag_bytes{{{S}}})", "{{server}} {{replica}} lag",
          empty_reason="no replica is connected to the watched primaries"),
        q(f"max by (server) (redis_master_link_up{{{S}}})", "{{server}} link up",
          empty_reason="the watched servers are primaries; the master link exists on replicas only"),
    ], "short"), w=8)


def build() -> Dashboard:
    g = Grid()
    _overview(g)
    _server_persistence_replication(g)
    _cache_effectiveness(g)
    _memory(g)
    _clients_and_commands(g)
    _ttl_hygiene(g)
    return dashboard("redis", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "redis_up"),
        label_variable("instance", "instance", "redis_up", parents=["job"]),
        label_variable("server", "server", "redis_up", parents=["job", "instance"]),
    ])
