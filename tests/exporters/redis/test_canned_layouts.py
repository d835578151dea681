"""The INFO-based collectors on INFO layouts this machine has no server for (Redis 6, Valkey)
and on a Redis 7 replica whose link is down. Pure parsing: the input is canned INFO text."""

from __future__ import annotations

import pytest

from stackwatch.exporters.collector import CollectorDisabled
from stackwatch.exporters.redis.clients import ClientsCollector
from stackwatch.exporters.redis.commands import CommandsCollector
from stackwatch.exporters.redis.keyspace import KeyspaceCollector
from stackwatch.exporters.redis.latency import LatencyCollector, quantile_label
from stackwatch.exporters.redis.memory import MemoryCollector
from stackwatch.exporters.redis.persistence import PersistenceCollector
from stackwatch.exporters.redis.replication import ReplicationCollector
from stackwatch.exporters.redis.stats import StatsCollector

from .collect import canned_source, sample, samples


def test_latency_is_disabled_on_redis6() -> None:
    with pytest.raises(CollectorDisabled) as raised:
        LatencyCollector().collect(canned_source("redis6"))
    assert raised.value.reason == "unsupported_version"


@pytest.mark.parametrize("layout", ["redis7", "valkey8"])
def test_latency_quantiles_in_seconds(layout: str) -> None:
    families = LatencyCollector().collect(canned_source(layout))
    quantiles = {dict(labels)["quantile"] for labels in samples(families, "redis_command_latency_seconds")}
    assert quantiles == {"0.5", "0.99", "0.999"}
    if layout == "redis7":
        assert sample(families, "redis_command_latency_seconds", cmd="get", quantile="0.999") == pytest.approx(10.047e-6)
        assert sample(families, "redis_command_latency_seconds", cmd="client|setname", quantile="0.5") == \
            pytest.approx(2.007e-6)


def test_quantile_labels() -> None:
    assert [quantile_label(p) for p in ("p50", "p99", "p99.9", "p100", "p0", "px", "p101", "pnan")] == \
        ["0.5", "0.99", "0.999", "1", "0", None, None, None]


def test_redis6_commands_without_failed_calls() -> None:
    families = CommandsCollector().collect(canned_source("redis6"))
    assert sample(families, "redis_commands_total", cmd="get") == 600000
    assert sample(families, "redis_commands_duration_seconds_total", cmd="set") == pytest.approx(0.9)
    assert samples(families, "redis_commands_failed_calls_total") == {}


def test_redis6_memory_saturation_and_persistence_failure() -> None:
    memory = MemoryCollector().collect(canned_source("redis6"))
    assert sample(memory, "redis_memory_saturation_ratio") == pytest.approx(0.5)
    assert sample(memory, "redis_memory_max_unlimited") == 0
    persistence = PersistenceCollector().collect(canned_source("redis6"))
    assert sample(persistence, "redis_rdb_last_bgsave_status") == 0
    assert sample(persistence, "redis_aof_enabled") == 1
    assert sample(persistence, "redis_latest_fork_seconds") == pytest.approx(0.0015)


def test_redis6_without_maxclients_in_info_or_config_has_no_saturation() -> None:
    families = ClientsCollector().collect(canned_source("redis6"))
    assert sample(families, "redis_connected_clients") == 12
    assert sample(families, "redis_rejected_connections_total") == 3
    assert sample(families, "redis_clients_saturation_ratio") is None


def test_redis6_primary_with_two_replicas() -> None:
    families = ReplicationCollector().collect(canned_source("redis6"))
    assert sample(families, "redis_replication_is_replica") == 0
    assert sample(families, "redis_connected_slaves") == 2
    assert sample(families, "redis_replication_offset_lag_bytes", replica="10.0.0.2:6379") == 56
    assert sample(families, "redis_replication_offset_lag_bytes", replica="10.0.0.3:6379") == 3456
    assert sample(families, "redis_connected_slave_lag_seconds", slave_ip="10.0.0.3", slave_port="6379",
                  slave_state="online") == 1


def test_redis7_replica_with_link_down() -> None:
    families = ReplicationCollector().collect(canned_source("redis7"))
    labels = {"master_host": "10.0.0.1", "master_port": "6379"}
    assert sample(families, "redis_replication_is_replica") == 1
    assert sample(families, "redis_master_link_up", **labels) == 0
    assert sample(families, "redis_master_link_down_since_seconds", **labels) == 42
    assert sample(families, "redis_slave_repl_offset", **labels) == 5000


def test_keyspace_databases() -> None:
    families = KeyspaceCollector().collect(canned_source("redis6"))
    assert sample(families, "redis_db_keys", db="db0") == 1000
    assert sample(families, "redis_db_keys_expiring", db="db0") == 400
    assert sample(families, "redis_db_avg_ttl_seconds", db="db0") == 360
    assert sample(families, "redis_db_keys", db="db2") == 20


def test_valkey_identity_and_errorstats() -> None:
    families = StatsCollector().collect(canned_source("valkey8"))
    info = samples(families, "redis_instance_info")
    (labels,) = info
    assert dict(labels)["server_name"] == "valkey"
    assert dict(labels)["server_version"] == "8.0.1"
    assert dict(labels)["redis_version"] == "7.2.4"
    redis7 = StatsCollector().collect(canned_source("redis7"))
    assert sample(redis7, "redis_errors_total", err="WRONGTYPE") == 1
    assert dict(next(iter(samples(redis7, "redis_instance_info"))))["server_name"] == "redis"


def test_hit_ratio_needs_a_window() -> None:
    collector = StatsCollector()
    assert collector.hit_ratio(100, 0, 0) == []         # first poll: no window yet
    assert collector.hit_ratio(100, 0, 0) == []         # no lookups in the window
    (family,) = collector.hit_ratio(130, 10, 0)
    assert family.samples[0].value == pytest.approx(0.75)
    assert collector.hit_ratio(5, 1, 0) == []           # counters went down: restart
    assert collector.hit_ratio(5, 1, 0) == []           # (next window)
    (family,) = collector.hit_ratio(1005, 5, 990)       # 990 of the 1000 hits were TTL lookups
    assert family.samples[0].value == pytest.approx(10 / 14)
    assert collector.hit_ratio(1105, 5, 1090) == []     # nothing but TTL lookups
