"""The locks collector with a real lock conflict: a SHARE lock holder blocking an INSERT."""

from __future__ import annotations

import threading
import time

import psycopg

from stackwatch.exporters.postgres.locks import LocksCollector, waits_sql
from tests.exporters.postgres.collect import collector, monitor_source, server_with, value
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB = "sw_locks"


server = server_with(DB, "CREATE TABLE IF NOT EXISTS ledger (id int)")
collect = collector(LocksCollector)


def test_blocked_insert_is_counted_by_mode_and_aged(server: PostgresServer) -> None:
    before = collect(server)
    assert value(before, "pg_locks_count", datname=DB, mode="RowExclusiveLock", granted="false") is None
    with server.connect(DB) as holder, server.connect(DB, application_name="sw-blocked") as waiter:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE ledger IN SHARE MODE")
        started = time.time()
        thread = threading.Thread(target=lambda: waiter.execute("INSERT INTO ledger VALUES (1)"), daemon=True)
        thread.start()
        wait_until(lambda: server.query("SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
                                        "(SELECT oid FROM pg_database WHERE datname = %s)", (DB,))[0][0] == 1,
                   10, "the INSERT to wait")
        time.sleep(1.0)
        during = collect(server)
        elapsed = time.time() - started
        holder.execute("COMMIT")  # the INSERT proceeds
        thread.join(10)
    assert value(during, "pg_locks_count", datname=DB, mode="ShareLock", granted="true") == 1
    assert value(during, "pg_locks_count", datname=DB, mode="RowExclusiveLock", granted="false") == 1
    assert value(during, "pg_locks_blocked_backends") == value(before, "pg_locks_blocked_backends") + 1
    assert 1.0 <= value(during, "pg_locks_oldest_wait_seconds") <= elapsed + 0.5
    after = collect(server)
    assert value(after, "pg_locks_count", datname=DB, mode="RowExclusiveLock", granted="false") is None
    assert value(after, "pg_locks_count", datname=DB, mode="ShareLock", granted="true") is None
    assert server.query("SELECT count(*) FROM ledger", dbname=DB)[0][0] >= 1


def test_nobody_waiting_reports_zero(server: PostgresServer) -> None:
    families = collect(server)
    assert value(families, "pg_locks_blocked_backends") == 0
    assert value(families, "pg_locks_oldest_wait_seconds") == 0
    # the exporter's own query holds AccessShareLock on what it reads, in the DSN's database
    assert value(families, "pg_locks_count", datname="postgres", mode="AccessShareLock", granted="true") >= 1


def test_oldest_wait_source_follows_the_version() -> None:
    assert "waitstart" in waits_sql(140000) and "waitstart" in waits_sql(170000)
    assert "waitstart" not in waits_sql(130023) and "query_start" in waits_sql(130023)


def test_version_sql_runs_on_this_server(server: PostgresServer) -> None:
    with monitor_source(server) as source:
        assert source.rows(waits_sql(source.version)) == [{"blocked": 0, "oldest_wait_seconds": 0.0}]
    if server.version >= 140000:  # the PostgreSQL 13 fallback also runs on newer servers
        with psycopg.connect(server.monitor_dsn) as conn:
            assert conn.execute(waits_sql(130000)).fetchone() == (0, 0.0)
