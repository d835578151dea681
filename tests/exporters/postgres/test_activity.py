"""The activity collector against real backends: idle transactions, sleepers, lock waiters, limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from stackwatch.core.postgres.activity import Group
from stackwatch.exporters.postgres.activity import ActivityCollector, cap_clients
from tests.exporters.postgres.collect import collector, server_with, value, values
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB = "sw_activity"


server = server_with(DB, "CREATE TABLE IF NOT EXISTS locked (id int)")
collect = collector(ActivityCollector)


@contextmanager
def running(conn: psycopg.Connection, sql: str) -> Iterator[threading.Thread]:
    """Run ``sql`` on ``conn`` in a thread (it blocks), cancel it on exit."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn.execute(sql)
        except psycopg.errors.QueryCanceled:
            pass
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        conn.cancel()
        thread.join(10)
        assert not errors, errors


def backends(server: PostgresServer, app: str, state: str) -> None:
    wait_until(lambda: server.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                    "AND state = %s", (app, state))[0][0] == 1, 10, f"{app} to be {state}")


def test_idle_in_transaction_is_counted_and_aged(server: PostgresServer) -> None:
    before = collect(server)
    started = time.time()
    with server.connect(DB, application_name="sw-idle-tx") as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT 1")
        backends(server, "sw-idle-tx", "idle in transaction")
        time.sleep(1.1)
        families = collect(server)
        elapsed = time.time() - started
    labels = {"datname": DB, "usename": "postgres", "application_name": "sw-idle-tx", "state": "idle in transaction"}
    assert value(families, "pg_stat_activity_count", **labels) == 1
    assert value(families, "pg_stat_activity_idle_in_transaction_backends") == \
        value(before, "pg_stat_activity_idle_in_transaction_backends") + 1
    assert 1.1 <= value(families, "pg_stat_activity_idle_in_transaction_max_seconds") <= elapsed + 0.5
    assert 1.1 <= value(families, "pg_stat_activity_max_tx_duration", datname=DB,
                        state="idle in transaction") <= elapsed + 0.5
    assert value(families, "pg_stat_activity_max_query_duration_seconds", datname=DB) == 0
    # used connections are exactly the client backends counted by state
    assert value(families, "pg_connections_used") == sum(values(families, "pg_stat_activity_count").values())


def test_longest_query_excludes_the_exporter_itself(server: PostgresServer) -> None:
    with server.connect(DB, application_name="sw-sleeper") as sleeper, \
            server.connect(DB, application_name="stackwatch") as own:
        started = time.time()
        with running(own, "SELECT pg_sleep(60)"):
            backends(server, "stackwatch", "active")
            families = collect(server)
            assert value(families, "pg_stat_activity_count", datname=DB, usename="postgres",
                         application_name="stackwatch", state="active") == 1
            assert value(families, "pg_stat_activity_max_query_duration_seconds", datname=DB) == 0
            assert value(families, "pg_stat_activity_max_tx_duration", datname=DB, state="active") == 0
            with running(sleeper, "SELECT pg_sleep(60)"):
                backends(server, "sw-sleeper", "active")
                time.sleep(0.5)
                families = collect(server)
                elapsed = time.time() - started
        seconds = value(families, "pg_stat_activity_max_query_duration_seconds", datname=DB)
        assert 0.5 <= seconds <= elapsed + 0.5
        assert 0.5 <= value(families, "pg_stat_activity_max_tx_duration", datname=DB, state="active") <= elapsed + 0.5


def test_lock_waiters_are_counted(server: PostgresServer) -> None:
    before = value(collect(server), "pg_stat_activity_lock_waiting_backends")
    with server.connect(DB) as holder, server.connect(DB, application_name="sw-waiter") as waiter:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        with running(waiter, "SELECT * FROM locked"):
            wait_until(lambda: server.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                            "'sw-waiter' AND wait_event_type = 'Lock'")[0][0] == 1, 10, "the waiter")
            families = collect(server)
        holder.execute("ROLLBACK")
    assert value(families, "pg_stat_activity_lock_waiting_backends") == before + 1


def test_database_and_role_limits(server: PostgresServer) -> None:
    server.query(f"ALTER DATABASE {DB} CONNECTION LIMIT 20")
    server.query("DROP ROLE IF EXISTS sw_limited")
    server.query("CREATE ROLE sw_limited LOGIN CONNECTION LIMIT 3")
    try:
        families = collect(server)
    finally:
        server.query("DROP ROLE sw_limited")
    assert value(families, "pg_database_connection_limit", datname=DB) == 20
    assert value(families, "pg_database_connection_limit", datname="postgres") == -1
    assert value(families, "pg_role_connection_limit", rolname="sw_limited") == 3
    assert value(families, "pg_role_connection_limit", rolname="stackwatch_monitor") is None  # no limit
    assert value(families, "pg_roles_connection_limit", rolname="sw_limited") == 3  # postgres_exporter's name


def test_saturation_subtracts_reserved_slots(postgres_any_version: PostgresServer, postgres_factory) -> None:
    settings = {"max_connections": 12, "superuser_reserved_connections": 3}
    if postgres_any_version.version >= 160000:
        settings["reserved_connections"] = 2  # PostgreSQL 16+: slots for pg_use_reserved_connections
    small: PostgresServer = postgres_factory(bindir=postgres_any_version.bindir, **settings)
    usable = 12 - 3 - settings.get("reserved_connections", 0)
    clients = [small.connect() for _ in range(4)]
    try:
        families = collect(small)
    finally:
        for conn in clients:
            conn.close()
    used = 4 + 1  # the clients and the exporter's own connection
    assert value(families, "pg_connections_used") == used
    assert value(families, "pg_connections_saturation_ratio") == pytest.approx(used / usable)


def test_client_labels_are_capped_with_an_other_rollup() -> None:
    groups = [Group("db", "u", f"app{i}", "idle", backends=i) for i in range(1, 6)] + \
        [Group("db", "u", "app5", "active", backends=2)]
    counts = cap_clients(groups, limit=2)
    assert counts == {
        ("db", "u", "app5", "idle"): 5, ("db", "u", "app5", "active"): 2,
        ("db", "u", "app4", "idle"): 4,
        ("db", "pg_other", "other", "idle"): 1 + 2 + 3,
    }


def test_client_cap_applies_to_real_connections(server: PostgresServer) -> None:
    conns = [server.connect(DB, application_name=f"sw-cap-{i}") for i in range(3)]
    try:
        families = collect(server, ActivityCollector(max_clients=1))
    finally:
        for conn in conns:
            conn.close()
    pairs = {(dict(k)["usename"], dict(k)["application_name"]) for k in values(families, "pg_stat_activity_count")}
    assert len(pairs - {("pg_other", "other")}) == 1
    assert value(families, "pg_connections_used") == sum(values(families, "pg_stat_activity_count").values())


def test_a_real_role_and_application_called_other_keep_their_own_count(server: PostgresServer) -> None:
    """The rollup was usename="other", application_name="other": a real role other running an
    application called other was summed into it. Role names starting with pg_ are reserved."""
    server.query("DROP ROLE IF EXISTS other")
    server.query("CREATE ROLE other LOGIN PASSWORD 'other-pw'")
    server.query(f'GRANT CONNECT ON DATABASE "{DB}" TO other')
    dsn = server.dsn(DB, user="other", password="other-pw")
    conns = [psycopg.connect(dsn, application_name="other") for _ in range(3)]
    conns += [server.connect(DB, application_name=f"sw-rest-{i}") for i in range(2)]
    try:
        families = collect(server, ActivityCollector(max_clients=1))
    finally:
        for conn in conns:
            conn.close()
    count = values(families, "pg_stat_activity_count")
    real = {"datname": DB, "usename": "other", "application_name": "other", "state": "idle"}
    assert count[frozenset(real.items())] == 3
    assert count[frozenset({**real, "usename": "pg_other"}.items())] >= 2


def test_client_backend_ages_tell_pooled_connections_from_fresh_ones(server: PostgresServer) -> None:
    for name in ("sw_ages_pooled", "sw_ages_fresh"):
        server.query(f"DROP DATABASE IF EXISTS {name}")
        server.query(f"CREATE DATABASE {name}")
    pooled = [server.connect("sw_ages_pooled") for _ in range(3)]
    try:
        def median(datname: str) -> float | None:
            return value(collect(server), "pg_stat_activity_client_backend_median_age_seconds", datname=datname)

        wait_until(lambda: (median("sw_ages_pooled") or 0.0) >= 1.0, 20, "the pooled backends to age")
        with server.connect("sw_ages_fresh"):  # what a client connecting per request leaves
            fresh = median("sw_ages_fresh")
            assert fresh is not None and fresh < (median("sw_ages_pooled") or 0.0), fresh
    finally:
        for conn in pooled:
            conn.close()
