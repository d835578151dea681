"""Drop-in: every family postgres_exporter (0.11.1 and 0.20.1) and redis_exporter (1.45 and 1.88) export by
default, with the same name, type and label names, from stackwatch run against real servers (every
PostgreSQL major of ``postgres_any_version``). The peers' lists are data (``peer_families.yaml``,
recorded from the peers themselves; ``peer_families_latest.yaml``, from the newest release's
source); the only departures are the documented exceptions below."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.exporters.peer_families import LATEST, Family, load, parse
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import free_port, stop_process, wait_until
from tests.fixtures.redis import RedisServer

PEERS = {**load(), **load(LATEST)}
SLOT = "sw_peer_families_slot"
DB = "sw_peer_families"

#: peer families stackwatch does not export, and why (each would describe the peer, not the server)
NOT_EXPORTED = {
    "pg_exporter_last_scrape_duration_seconds": "the peer queries on every scrape; stackwatch serves a "
    "snapshot and reports each collector's poll: pg_scrape_collector_duration_seconds{collector}",
    "pg_exporter_last_scrape_error": "per-collector pg_scrape_collector_success{collector} instead",
    "pg_exporter_scrapes_total": "scrapes cost the database nothing in stackwatch (snapshot); not a server signal",
    "redis_exporter_last_scrape_connect_time_seconds": "exporter-internal; redis_up and "
    "redis_connection_error{reason} say whether the connection works",
    "redis_exporter_last_scrape_duration_seconds": "redis_scrape_collector_duration_seconds{collector} instead",
    "redis_exporter_last_scrape_error": "redis_scrape_collector_success{collector} instead",
    "redis_exporter_scrape_duration_seconds": "exporter-internal (scrapes are served from the snapshot)",
    "redis_exporter_scrapes_total": "exporter-internal (scrapes are served from the snapshot)",
    "redis_target_scrape_request_errors_total": "/probe errors of the peer; stackwatch's /probe answers 400/404",
    "redis_last_key_groups_scrape_duration_milliseconds": "the peer's key-groups feature (off by default); "
    "stackwatch's TTL sampler reports per-prefix families instead",
}

#: families with more labels than the peer's, and why; every peer label is still there
EXTRA_LABELS = {
    "pg_stat_activity_count": ({"usename", "application_name"},
                               "who holds the connections (capped at 50 pairs + other); sum by (datname, state) "
                               "gives the peer's series"),
    "pg_locks_count": ({"granted"}, "held vs awaited locks; sum without (granted) gives the peer's series"),
    "redis_instance_info": ({"server_name", "server_version"}, "tells Valkey from Redis"),
}

#: postgres_exporter 0.17+ also labels pg_stat_activity_count and pg_stat_activity_max_tx_duration by
#: backend_type, wait_event_type and wait_event (0.11 had datname and state only). stackwatch keeps
#: 0.11's labels plus usename and application_name: it counts client backends only (backend_type
#: would be constant) and reports lock waits in pg_stat_activity_lock_waiting_backends and pg_locks_*
#: rather than one series per wait event. Not in peer_families_latest.yaml for that reason.

#: families whose data is NULL on a fresh server: declared, no sample (the peer exports NaN)
MAY_BE_EMPTY = {
    "pg_stat_database_checksum_last_failure": "no checksum failure ever happened",
    "pg_stat_database_stats_reset": "statistics never reset (PostgreSQL 15+ leave it NULL until a reset)",
    "pg_stat_archiver_last_archive_age": "archiving is off: nothing was ever archived",
    "redis_latency_percentiles_usec": "needs latency tracking (Redis 7+); empty until commands ran",
    "pg_replication_last_replay_seconds": "a primary replays nothing",
    "pg_replication_slots_safe_wal_size_bytes": "NULL without max_slot_wal_keep_size",
    "pg_replication_slot_safe_wal_size_bytes": "NULL without max_slot_wal_keep_size",
    **{f"pg_stat_replication_{name}": "no replica connected (tests/exporters/postgres/test_replication.py)"
       for name in ("pg_current_wal_lsn_bytes", "pg_wal_lsn_diff")},
    **{f"pg_stat_progress_vacuum_{name}": "no VACUUM running (tests/exporters/postgres/test_progress_vacuum.py)"
       for name in ("phase", "heap_blks", "heap_blks_scanned", "heap_blks_vacuumed", "index_vacuums",
                    "max_dead_tuples", "num_dead_tuples")},
    "pg_stat_user_tables_last_autovacuum": "autovacuum has not visited the fresh tables yet",
    "pg_stat_user_tables_last_autoanalyze": "autovacuum has not visited the fresh tables yet",
}

#: postgres_exporter 0.11.1's bgwriter query fails on PostgreSQL 17 (columns moved to
#: pg_stat_checkpointer and pg_stat_io); stackwatch exports these families on every major
EVERY_MAJOR_PREFIXES = ("pg_stat_bgwriter_",)


def same_type(peer: str, name: str, ours: str) -> bool:
    """Equal types; a peer counter whose name lacks ``_total`` is untyped in stackwatch, because
    OpenMetrics (which Prometheus negotiates) only allows counters named ``*_total`` and renaming
    would break the dashboards (``exporters/families.py``)."""
    return ours == peer or (peer == "counter" and not name.endswith("_total") and ours == "untyped")


def mismatches(peer: dict[str, dict], ours: dict[str, Family], major: int | None = None) -> list[str]:
    problems = []
    for name, spec in peer.items():
        if name in NOT_EXPORTED:
            continue
        majors = spec.get("majors")
        if major is not None and majors and major not in majors and not name.startswith(EVERY_MAJOR_PREFIXES):
            continue
        if major is not None and major < spec.get("since", 0):  # the server has no such data
            continue
        family = ours.get(name)
        if family is None:
            problems.append(f"{name}: missing")
            continue
        if not same_type(spec["type"], name, family.type):
            problems.append(f"{name}: type {family.type}, the peer's is {spec['type']}")
        extra = EXTRA_LABELS.get(name, (set(), ""))[0]
        if family.samples and family.labels != set(spec["labels"]) | extra:
            problems.append(f"{name}: labels {sorted(family.labels)}, the peer's are {spec['labels']}")
        if not family.samples and name not in MAY_BE_EMPTY:
            problems.append(f"{name}: no sample")
    return problems


@pytest.fixture
def scraped(postgres_any_version: PostgresServer, redis_server: RedisServer) -> Iterator[dict[str, Family]]:
    """stackwatch's /metrics (text format) with one PostgreSQL and one Redis target, once every
    collector has polled; the server holds a replication slot, as when the peers were recorded."""
    postgres_any_version.query("SELECT pg_create_physical_replication_slot(%s, true)", (SLOT,))
    postgres_any_version.create_database(DB)  # a table vacuumed and analyzed once, with a TOAST table
    postgres_any_version.query("DROP TABLE IF EXISTS vacuumed; CREATE TABLE vacuumed (id int PRIMARY KEY, t text); "
                               "INSERT INTO vacuumed VALUES (1, 'x')", dbname=DB)
    postgres_any_version.query("VACUUM ANALYZE vacuumed", dbname=DB)
    # pg_roles_connection_limit lists the roles that have a limit (the peer also lists -1 for the others)
    if not postgres_any_version.query("SELECT 1 FROM pg_roles WHERE rolname = 'sw_peer_limited'"):
        postgres_any_version.query("CREATE ROLE sw_peer_limited CONNECTION LIMIT 5")
    redis_server.client().set("peer:1", "x", ex=600)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{port}",
                             "--postgres-dsn", postgres_any_version.monitor_dsn, "--redis-url", redis_server.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/-/ready", timeout=10).status_code == 200, 60, "/-/ready")
        yield parse(httpx.get(url + "/metrics", timeout=30).text)
    finally:
        stop_process(proc)
        postgres_any_version.query("SELECT pg_drop_replication_slot(%s)", (SLOT,))


def test_every_default_family_of_the_peers_is_exported(scraped: dict[str, Family],
                                                       postgres_any_version: PostgresServer) -> None:
    major = postgres_any_version.version // 10000
    problems = (mismatches(PEERS["postgres_exporter"], scraped, major)
                + mismatches(PEERS["postgres_exporter_0_20"], scraped, major)
                + mismatches(PEERS["redis_exporter"], scraped) + mismatches(PEERS["redis_exporter_1_88"], scraped))
    assert not problems, "\n".join(problems)


#: names the peers' dashboards and alerts query that stackwatch does not serve here, and why
DASHBOARD_ONLY = {
    "pg_replication_lag": "not a default family: the mixin's alert reads the example queries.yaml of old "
    "releases; the default collector's pg_replication_lag_seconds is exported",
    "redis_cluster_slots_fail": "cluster mode only (CLUSTER INFO): not collected by stackwatch (left out)",
    "redis_cluster_slots_pfail": "cluster mode only (CLUSTER INFO): not collected by stackwatch (left out)",
    "redis_cluster_state": "cluster mode only (CLUSTER INFO): not collected by stackwatch (left out)",
    "redis_memory_fragmentation_ratio": "no exporter has it: redis_exporter's (and stackwatch's) name is "
    "redis_mem_fragmentation_ratio (a mistake of that dashboard)",
    "redis_total_system_memory_bytes": "redis_exporter exports it only with --include-system-metrics (off by default)",
    "redis_master_last_io_seconds_ago": "on a replica only (tests/exporters/redis/test_collectors.py); "
    "the test server is a primary",
}


def test_what_the_peers_dashboards_query_is_served(scraped: dict[str, Family]) -> None:
    """Sanity check of the lists: the peers' own dashboards and alerts find their families."""
    missing = {n for n in PEERS["dashboards"] if n not in scraped and n not in NOT_EXPORTED and n not in DASHBOARD_ONLY}
    assert not missing, sorted(missing)


def test_exceptions_name_real_peer_families() -> None:
    """Every exception refers to a family of the data file, so none outlives its reason."""
    peer_names = {name for families in PEERS.values() for name in families}  # the dashboards' names too
    assert set(NOT_EXPORTED) | set(EXTRA_LABELS) | set(MAY_BE_EMPTY) | set(DASHBOARD_ONLY) <= peer_names


def test_a_missing_family_a_wrong_type_and_a_wrong_label_are_caught() -> None:
    peer = {"pg_a": {"type": "gauge", "labels": ["datname"]}, "pg_b_total": {"type": "counter", "labels": []},
            "pg_c": {"type": "counter", "labels": ["datname"]}, "pg_d": {"type": "gauge", "labels": [], "majors": [17]},
            "pg_e": {"type": "gauge", "labels": [], "since": 16}}
    ours = {"pg_b_total": Family("untyped", set(), 1), "pg_c": Family("untyped", {"state"}, 1)}
    assert mismatches(peer, ours, 15) == ["pg_a: missing", "pg_b_total: type untyped, the peer's is counter",
                                          "pg_c: labels ['state'], the peer's are ['datname']"]
    assert mismatches(peer, ours, 17)[-2:] == ["pg_d: missing", "pg_e: missing"]
