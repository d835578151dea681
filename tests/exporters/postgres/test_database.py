"""The database collectors against real work in a fresh database: exact counter deltas, the
window hit ratio, sizes and transaction ID ages."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from stackwatch.exporters.postgres.database import TIMESTAMPS, DatabaseCollector, DatabaseSizeCollector, HitWindow
from tests.exporters.postgres.collect import monitor_source, value, values
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB = "sw_database"


@pytest.fixture(scope="module")
def server(postgres_any_version: PostgresServer) -> PostgresServer:
    postgres_any_version.query(f"DROP DATABASE IF EXISTS {DB}")
    postgres_any_version.query(f"CREATE DATABASE {DB}")
    postgres_any_version.query("CREATE TABLE items (id int PRIMARY KEY, note text)", dbname=DB)
    # the catalog rows of CREATE TABLE arrive in the counters asynchronously (PostgreSQL 13's stats
    # collector); settle them so that the deltas below count only the tests' own work
    wait_until(lambda: stat(postgres_any_version, "tup_inserted") > 0, 20, "the CREATE TABLE stats")
    return postgres_any_version


def counters(server: PostgresServer, collector: DatabaseCollector | None = None) -> list:
    with monitor_source(server) as source:
        return (collector or DatabaseCollector()).collect(source)


def stat(server: PostgresServer, column: str) -> float:
    return value(counters(server), f"pg_stat_database_{column}", datid=oid(server), datname=DB)


def oid(server: PostgresServer) -> str:
    return str(server.query("SELECT oid FROM pg_database WHERE datname = %s", (DB,))[0][0])


def wait_for_delta(server: PostgresServer, column: str, before: float, delta: float) -> float:
    """Stats reach the shared counters asynchronously (at the latest when the backend exits)."""
    wait_until(lambda: stat(server, column) - before >= delta, 20, f"{column} to grow by {delta}")
    return stat(server, column) - before


def test_row_and_transaction_counters_are_exact(server: PostgresServer) -> None:
    before = {c: stat(server, c) for c in ("tup_inserted", "tup_updated", "tup_deleted", "xact_rollback")}
    with server.connect(DB) as conn:
        conn.execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 1000) AS g")
        conn.execute("UPDATE items SET note = 'y' WHERE id <= 5")
        conn.execute("DELETE FROM items WHERE id > 990")
        for _ in range(3):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO items VALUES (-1, 'rolled back')")
            conn.execute("ROLLBACK")
    assert wait_for_delta(server, "tup_inserted", before["tup_inserted"], 1003) == 1003
    assert wait_for_delta(server, "tup_updated", before["tup_updated"], 5) == 5
    assert wait_for_delta(server, "tup_deleted", before["tup_deleted"], 10) == 10
    assert wait_for_delta(server, "xact_rollback", before["xact_rollback"], 3) == 3


def test_every_database_is_listed_once_without_the_shared_row(server: PostgresServer) -> None:
    families = counters(server)
    expected = {(str(o), n) for o, n in server.query("SELECT oid, datname FROM pg_database")}
    for family in families:
        if family.name.startswith("pg_stat_database_") and family.name != "pg_stat_database_cache_hit_ratio":
            # postgres_exporter's counter names have no _total (but 0.20's active_time_seconds_total);
            # numbackends is its gauge
            expected_type = {"pg_stat_database_numbackends": "gauge",
                             "pg_stat_database_active_time_seconds": "counter"}.get(family.name, "unknown")
            assert family.type == expected_type
            listed = {(s.labels["datid"], s.labels["datname"]) for s in family.samples}
            if family.name.endswith(TIMESTAMPS):  # NULL (never reset, never failed) is left out
                assert listed <= expected
            else:
                assert listed == expected


def test_numbackends_counts_the_connections_to_the_database(server: PostgresServer) -> None:
    with server.connect(DB), server.connect(DB):
        assert stat(server, "numbackends") == 2  # live, not from the cumulative statistics


def test_session_counters_from_postgresql_14(server: PostgresServer) -> None:
    if server.version < 140000:  # the columns do not exist: no family rather than zeros
        assert value(counters(server), "pg_stat_database_sessions", datid=oid(server), datname=DB) is None
        return
    before = stat(server, "sessions")
    with server.connect(DB) as conn:
        conn.execute("SELECT pg_sleep(0.2)")
    assert wait_for_delta(server, "sessions", before, 1) >= 1
    assert stat(server, "session_time") >= 200  # milliseconds, as postgres_exporter exports them
    active_ms = stat(server, "active_time")
    assert active_ms >= 200
    assert stat(server, "active_time_seconds_total") == pytest.approx(active_ms / 1000)  # 0.20's name


def test_conflict_counters_and_stats_reset(server: PostgresServer) -> None:
    assert stat(server, "conflicts_confl_snapshot") == 0  # a primary cancels nothing for recovery
    server.query("SELECT pg_stat_reset()", dbname=DB)
    reset = wait_until_value(server, "stats_reset")
    assert abs(reset - time.time()) < 60


def wait_until_value(server: PostgresServer, column: str) -> float:
    wait_until(lambda: stat(server, column) is not None, 20, f"{column} to be set")
    return stat(server, column)


def test_deadlock_is_counted_once(server: PostgresServer) -> None:
    server.query("INSERT INTO items VALUES (-10, 'a'), (-20, 'b') ON CONFLICT DO NOTHING", dbname=DB)
    before = stat(server, "deadlocks")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def transfer(first: int, second: int) -> None:
        with server.connect(DB) as conn:
            conn.execute("SET deadlock_timeout = '100ms'")
            try:
                with conn.transaction():
                    conn.execute("UPDATE items SET note = 'locked' WHERE id = %s", (first,))
                    barrier.wait(10)
                    conn.execute("UPDATE items SET note = 'locked' WHERE id = %s", (second,))
                outcomes.append("committed")
            except psycopg.errors.DeadlockDetected:
                outcomes.append("deadlock")

    threads = [threading.Thread(target=transfer, args=args) for args in ((-10, -20), (-20, -10))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["committed", "deadlock"]
    assert wait_for_delta(server, "deadlocks", before, 1) == 1


def test_temp_files_from_a_spilling_sort(server: PostgresServer) -> None:
    files, written = stat(server, "temp_files"), stat(server, "temp_bytes")
    with server.connect(DB) as conn:
        conn.execute("SET work_mem = '64kB'")
        conn.execute("SELECT g FROM generate_series(1, 200000) AS g ORDER BY g DESC").fetchall()
    assert wait_for_delta(server, "temp_files", files, 1) >= 1
    assert wait_for_delta(server, "temp_bytes", written, 1) > 200000  # at least 1 byte per row spilled


def test_cache_hit_ratio_covers_only_the_window(server: PostgresServer) -> None:
    collector = DatabaseCollector()
    first = counters(server, collector)
    assert value(first, "pg_stat_database_cache_hit_ratio", datname=DB) is None  # no window yet
    hits_before = value(first, "pg_stat_database_blks_hit", datid=oid(server), datname=DB)
    with server.connect(DB) as conn:
        for _ in range(5):
            conn.execute("SELECT count(*) FROM items").fetchone()
    wait_for_delta(server, "blks_hit", hits_before, 5)
    second = counters(server, collector)
    hit = value(second, "pg_stat_database_blks_hit", datid=oid(server), datname=DB) - hits_before
    read = value(second, "pg_stat_database_blks_read", datid=oid(server), datname=DB) - \
        value(first, "pg_stat_database_blks_read", datid=oid(server), datname=DB)
    assert hit > 0
    assert value(second, "pg_stat_database_cache_hit_ratio", datname=DB) == pytest.approx(hit / (hit + read))


def test_hit_window_arithmetic() -> None:
    window = HitWindow()
    assert window.update({"a": (100, 100), "b": (5, 5)}) == {}  # first poll: no window
    assert window.update({"a": (190, 110), "b": (5, 5), "c": (1, 0)}) == {"a": 0.9}  # b idle, c new
    assert window.update({"a": (10, 0), "b": (6, 5), "c": (2, 0)}) == {"b": 1.0, "c": 1.0}  # a was reset
    assert window.update({"a": (10, 10)}) == {"a": 0.0}  # only reads; dropped databases are forgotten
    assert window.update({"b": (7, 5)}) == {}


def test_sizes_of_all_databases_in_one_poll(server: PostgresServer) -> None:
    with monitor_source(server) as source:
        families = DatabaseSizeCollector().collect(source)
    sizes = {dict(k)["datname"]: v for k, v in values(families, "pg_database_size_bytes").items()}
    expected = dict(server.query("SELECT datname, pg_database_size(datname) FROM pg_database"))
    assert sizes == expected
    assert sizes[DB] > 7 * 1024 * 1024  # a real database directory, not a placeholder


def xid_ages(server: PostgresServer) -> dict[str, float]:
    with monitor_source(server) as source:
        families = DatabaseSizeCollector().collect(source)
    return {dict(k)["datname"]: v for k, v in values(families, "pg_database_datfrozenxid_age").items()}


def test_transaction_id_age_grows_with_transactions_and_drops_with_a_freeze(server: PostgresServer) -> None:
    before = xid_ages(server)
    assert set(before) == {name for (name,) in server.query("SELECT datname FROM pg_database")}
    with server.connect(dbname=DB) as conn:
        for _ in range(200):  # each call assigns (consumes) one transaction ID
            conn.execute("SELECT txid_current()")
    grown = xid_ages(server)
    assert grown[DB] >= before[DB] + 200
    server.query("VACUUM (FREEZE)", dbname=DB)  # advances datfrozenxid of this database only
    frozen = xid_ages(server)
    assert frozen[DB] < grown[DB] - 150
    assert frozen["postgres"] >= grown["postgres"]
