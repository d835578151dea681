"""Every Redis collector against a real redis-server (dedicated servers where a test changes
settings or needs counters nobody else touches)."""

from __future__ import annotations

import pytest
import redis

from stackwatch.core.redis.source import CONFIG_KEYS
from stackwatch.exporters.collector import CollectorDisabled
from stackwatch.exporters.redis.clients import ClientsCollector
from stackwatch.exporters.redis.commands import CommandsCollector
from stackwatch.exporters.redis.config import ConfigCollector
from stackwatch.exporters.redis.keyspace import KeyspaceCollector
from stackwatch.exporters.redis.latency import LatencyCollector
from stackwatch.exporters.redis.latency_histogram import LatencyHistogramCollector
from stackwatch.exporters.redis.memory import MemoryCollector
from stackwatch.exporters.redis.persistence import PersistenceCollector
from stackwatch.exporters.redis.replication import ReplicationCollector
from stackwatch.exporters.redis.slowlog import SlowlogCollector
from stackwatch.exporters.redis.stats import StatsCollector
from tests.fixtures.procs import wait_until

from .collect import poll, real_source, sample, samples


def test_stats_hit_ratio_over_the_window(redis_factory) -> None:
    server = redis_factory()
    client = server.client()
    client.set("user:1", "x")
    collector = StatsCollector()
    with real_source(server.url) as source:
        first = poll(source, collector)
        assert sample(first, "redis_keyspace_hit_ratio") is None
        for key in ("user:1", "user:1", "user:1", "user:404"):
            client.get(key)
        second = poll(source, collector)
    assert sample(second, "redis_keyspace_hit_ratio") == pytest.approx(0.75)
    assert sample(second, "redis_keyspace_hits_total") == sample(first, "redis_keyspace_hits_total") + 3
    assert sample(second, "redis_keyspace_misses_total") == sample(first, "redis_keyspace_misses_total") + 1
    (labels,) = samples(second, "redis_instance_info")
    assert dict(labels)["role"] == "master"
    assert dict(labels)["redis_version"] == client.info("server")["redis_version"]
    assert sample(second, "redis_commands_processed_total") > 0
    assert sample(second, "redis_uptime_in_seconds") >= 0


def test_connections_received_count_a_client_connecting_per_request(redis_factory) -> None:
    """The churn signal (``RedisConnectionChurn``): each new connection counts, a pooled one once."""
    server = redis_factory()
    collector = StatsCollector()
    with real_source(server.url) as source:
        before = sample(poll(source, collector), "redis_connections_received_total")
        for _ in range(5):  # a handler that connects for each request
            with redis.Redis.from_url(server.url) as client:
                client.get("user:1")
        pooled = server.client()
        for _ in range(20):  # one pooled connection serving every request
            pooled.get("user:1")
        after = sample(poll(source, collector), "redis_connections_received_total")
        pooled.close()
    assert after - before == 6


def test_memory_unlimited(redis_server) -> None:
    with real_source(redis_server.url) as source:
        families = poll(source, MemoryCollector())
    assert sample(families, "redis_memory_max_unlimited") == 1
    assert sample(families, "redis_memory_max_bytes") == 0
    assert sample(families, "redis_memory_saturation_ratio") is None
    assert sample(families, "redis_memory_used_bytes") > 0
    assert sample(families, "redis_mem_fragmentation_ratio") > 0


def test_memory_saturation_with_maxmemory(redis_factory) -> None:
    server = redis_factory(maxmemory="10mb", maxmemory_policy="allkeys-lru")
    server.client().set("big", "x" * 1_000_000)
    with real_source(server.url) as source:
        families = poll(source, MemoryCollector())
        config = poll(source, ConfigCollector())
    used = sample(families, "redis_memory_used_bytes")
    assert sample(families, "redis_memory_max_unlimited") == 0
    assert sample(families, "redis_memory_max_bytes") == 10 * 1024 * 1024
    assert sample(families, "redis_memory_saturation_ratio") == pytest.approx(used / (10 * 1024 * 1024))
    assert sample(config, "redis_config_maxmemory") == 10 * 1024 * 1024
    assert sample(config, "redis_config_maxmemory_policy_info", policy="allkeys-lru") == 1


def test_clients_saturation_and_rejected_connections(redis_factory) -> None:
    server = redis_factory(maxclients="4")
    extra = [server.client() for _ in range(6)]
    refused = 0
    with real_source(server.url) as source:  # the exporter's connection takes one of the 4 slots
        for client in extra:
            try:
                client.ping()
            except redis.ConnectionError:
                refused += 1
        families = poll(source, ClientsCollector())
    connected = sample(families, "redis_connected_clients")
    assert refused >= 2
    assert sample(families, "redis_rejected_connections_total") >= refused
    assert sample(families, "redis_clients_saturation_ratio") == pytest.approx(connected / 4)
    assert sample(families, "redis_blocked_clients") == 0


def test_commands_and_latency_percentiles(redis_server) -> None:
    client = redis_server.client()
    for i in range(20):
        client.set(f"cmd:{i}", i)
    client.config_get("maxmemory")
    with real_source(redis_server.url) as source:
        commands = poll(source, CommandsCollector())
        latency = poll(source, LatencyCollector()) + poll(source, LatencyHistogramCollector())
    assert sample(commands, "redis_commands_total", cmd="set") >= 20
    assert sample(commands, "redis_commands_duration_seconds_total", cmd="set") > 0
    assert sample(commands, "redis_commands_total", cmd="config|get") >= 1
    assert sample(commands, "redis_commands_failed_calls_total", cmd="set") == 0
    for quantile in ("0.5", "0.99", "0.999"):
        value = sample(latency, "redis_command_latency_seconds", cmd="set", quantile=quantile)
        assert value is not None and 0 < value < 1
    # redis_exporter's summary: microseconds, its quantile labels, calls and time from commandstats
    for percent, quantile in (("50", "0.5"), ("99", "0.99"), ("99.9", "0.999")):
        usec = sample(latency, "redis_latency_percentiles_usec", cmd="set", quantile=percent)
        assert usec == pytest.approx(sample(latency, "redis_command_latency_seconds", cmd="set",
                                            quantile=quantile) * 1e6)
    assert sample(latency, "redis_latency_percentiles_usec_count", cmd="set") == \
        sample(commands, "redis_commands_total", cmd="set")
    assert sample(latency, "redis_latency_percentiles_usec_sum", cmd="set") == \
        pytest.approx(sample(commands, "redis_commands_duration_seconds_total", cmd="set") * 1e6)
    # redis_exporter 1.88's histogram (LATENCY HISTOGRAM): cumulative buckets, as Redis reports them
    buckets = {float(dict(k)["le"]): v for k, v in samples(latency, "redis_commands_latencies_usec_bucket").items()
               if dict(k)["cmd"] == "set"}
    calls = sample(latency, "redis_commands_latencies_usec_count", cmd="set")
    assert calls == sample(commands, "redis_commands_total", cmd="set") and buckets[float("inf")] == calls
    counts = [buckets[bound] for bound in sorted(buckets)]
    assert counts == sorted(counts) and len(buckets) >= 2 and min(buckets) >= 1
    assert sample(latency, "redis_commands_latencies_usec_sum", cmd="set") == \
        sample(latency, "redis_latency_percentiles_usec_sum", cmd="set")


def test_latency_tracking_off_gives_an_empty_family(redis_factory) -> None:
    server = redis_factory(latency_tracking="no")
    server.client().set("a", 1)
    with real_source(server.url) as source:
        families = poll(source, LatencyCollector())
    assert samples(families, "redis_command_latency_seconds") == {}


def test_keyspace(redis_factory) -> None:
    server = redis_factory()
    client = server.client()
    with real_source(server.url) as source:
        empty = poll(source, KeyspaceCollector())
        assert sample(empty, "redis_db_keys", db="db0") == 0
        client.set("a", 1)
        client.set("b", 1, ex=600)
        other = server.client(db=3)
        other.set("c", 1)
        families = poll(source, KeyspaceCollector())
    assert sample(families, "redis_db_keys", db="db0") == 2
    assert sample(families, "redis_db_keys_expiring", db="db0") == 1
    assert 0 <= sample(families, "redis_db_avg_ttl_seconds", db="db0") <= 600  # estimated by the expire cycle
    assert sample(families, "redis_db_keys", db="db3") == 1


def test_slowlog_counts_new_entries_per_command(redis_factory) -> None:
    server = redis_factory(slowlog_log_slower_than="0")  # every command is "slow"
    client = server.client()
    client.set("before", 1)
    collector = SlowlogCollector()
    with real_source(server.url) as source:
        baseline = poll(source, collector)
        assert samples(baseline, "redis_slowlog_entries") == {}  # the first poll sets the baseline
        for i in range(3):
            client.set(f"k{i}", i)
        client.config_get("maxmemory")
        window = poll(source, collector)
        quiet = poll(source, collector)
    assert sample(window, "redis_slowlog_entries", cmd="set") == 3
    assert sample(window, "redis_slowlog_entries", cmd="config|get") == 1
    assert sample(quiet, "redis_slowlog_entries", cmd="set") is None
    assert sample(window, "redis_slowlog_length") > 0
    assert sample(window, "redis_slowlog_last_id") > sample(baseline, "redis_slowlog_last_id")
    assert sample(window, "redis_last_slow_execution_duration_seconds") >= 0


def test_empty_slowlog_reports_zero_like_redis_exporter(redis_factory) -> None:
    server = redis_factory(slowlog_log_slower_than="-1")  # nothing is ever logged
    with real_source(server.url) as source:
        families = poll(source, SlowlogCollector())
    assert sample(families, "redis_slowlog_last_id") == 0
    assert sample(families, "redis_last_slow_execution_duration_seconds") == 0


def test_slowlog_after_a_restart_counts_the_new_log(redis_factory) -> None:
    server = redis_factory(slowlog_log_slower_than="0")
    collector = SlowlogCollector()
    with real_source(server.url) as source:
        for i in range(20):
            server.client().set(f"k{i}", i)
        poll(source, collector)
    server.restart()  # ids restart from 0, below the id the collector saw last
    server.client().set("after", 1)
    with real_source(server.url) as source:
        families = poll(source, collector)
    assert sample(families, "redis_slowlog_entries", cmd="set") == 1


def test_replication_primary_and_replica(redis_factory) -> None:
    primary = redis_factory()
    replica = redis_factory(replicaof=f"{primary.host} {primary.port}")
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", 20,
               "the replica to sync")
    primary.client().set("replicated", 1)
    wait_until(lambda: replica.client().get("replicated") == b"1", 20, "the write to replicate")
    with real_source(primary.url) as source:
        on_primary = poll(source, ReplicationCollector())
    with real_source(replica.url) as source:
        on_replica = poll(source, ReplicationCollector())
    assert sample(on_primary, "redis_replication_is_replica") == 0
    assert sample(on_primary, "redis_connected_slaves") == 1
    (lag,) = samples(on_primary, "redis_replication_offset_lag_bytes").items()
    assert dict(lag[0])["replica"].endswith(f":{replica.port}")
    assert lag[1] >= 0
    master = {"master_host": primary.host, "master_port": str(primary.port)}
    assert sample(on_replica, "redis_replication_is_replica") == 1
    assert sample(on_replica, "redis_master_link_up", **master) == 1
    assert sample(on_replica, "redis_slave_repl_offset", **master) > 0


def test_persistence(redis_factory) -> None:
    server = redis_factory(appendonly="yes")
    client = server.client()
    client.set("a", 1)
    before = client.lastsave()
    client.bgsave()
    wait_until(lambda: client.info("persistence")["rdb_bgsave_in_progress"] == 0
               and client.lastsave() >= before, 20, "BGSAVE to finish")
    with real_source(server.url) as source:
        families = poll(source, PersistenceCollector())
    assert sample(families, "redis_aof_enabled") == 1
    assert sample(families, "redis_rdb_last_bgsave_status") == 1
    assert sample(families, "redis_aof_last_write_status") == 1
    assert sample(families, "redis_rdb_last_save_timestamp_seconds") >= before.timestamp() - 1
    assert sample(families, "redis_loading_dump_file") == 0


def test_config_reads_only_its_keys(redis_factory) -> None:
    server = redis_factory(maxclients="123", slowlog_log_slower_than="2500")
    with real_source(server.url) as source:
        families = poll(source, ConfigCollector())
    assert sample(families, "redis_config_maxclients") == 123
    assert sample(families, "redis_config_slowlog_log_slower_than_seconds") == pytest.approx(0.0025)
    assert sample(families, "redis_config_maxmemory_policy_info", policy="noeviction") == 1
    # Redis 7's defaults: "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    assert sample(families, "redis_config_client_output_buffer_limit_bytes", **{"class": "slave", "limit": "hard"}) \
        == 256 * 1024 * 1024
    assert sample(families, "redis_config_client_output_buffer_limit_bytes", **{"class": "pubsub", "limit": "soft"}) \
        == 8 * 1024 * 1024
    assert sample(families, "redis_config_client_output_buffer_limit_overcome_seconds",
                  **{"class": "pubsub", "limit": "soft"}) == 60
    stats = server.client().info("commandstats")
    assert stats["cmdstat_config|get"]["calls"] == len(CONFIG_KEYS)  # one call per key, never CONFIG GET *


def test_redis_7_info_fields_under_redis_exporters_names(redis_factory) -> None:
    server = redis_factory(maxclients="123")
    server.client().execute_command("SAVE")
    with real_source(server.url) as source:
        families = poll(source, ClientsCollector()) + poll(source, PersistenceCollector()) + \
            poll(source, StatsCollector()) + poll(source, MemoryCollector())
    assert sample(families, "redis_max_clients") == 123
    assert sample(families, "redis_rdb_saves_total") == 1
    assert sample(families, "redis_evicted_clients_total") == 0
    assert sample(families, "redis_mem_total_replication_buffers_bytes") == 0
    # exported under its name; a fresh server's main thread may not have a tick of user CPU yet
    main_thread = sample(families, "redis_cpu_user_main_thread_seconds_total")
    assert main_thread is not None and main_thread >= 0


def test_latency_histogram_without_permission_disables_only_itself(redis_factory) -> None:
    server = redis_factory()
    server.client().execute_command("ACL", "SETUSER", "nohist", "on", ">pw", "-@all", "+info", "+ping",
                                    "+client|setname")
    with real_source(f"redis://nohist:pw@{server.host}:{server.port}/0") as source:
        with pytest.raises(CollectorDisabled) as raised:
            poll(source, LatencyHistogramCollector())
        percentiles = poll(source, LatencyCollector())  # INFO latencystats still works
    assert raised.value.reason == "permission"
    assert samples(percentiles, "redis_command_latency_seconds") != {}


def test_config_unavailable_disables_the_collector(redis_factory) -> None:
    server = redis_factory()
    server.client().execute_command("ACL", "SETUSER", "noconfig", "on", ">pw", "-@all", "+info", "+ping",
                                    "+client|setname")
    url = f"redis://noconfig:pw@{server.host}:{server.port}/0"
    with real_source(url) as source:
        with pytest.raises(CollectorDisabled) as raised:
            poll(source, ConfigCollector())
        clients = poll(source, ClientsCollector())  # maxclients still comes from INFO
    assert raised.value.reason == "config_unavailable"
    assert sample(clients, "redis_clients_saturation_ratio") > 0
