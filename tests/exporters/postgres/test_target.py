"""The PostgreSQL target against a real server: reconnects, failures and what they export."""

from __future__ import annotations

import time

import pytest

from stackwatch.core.postgres.connection import InvalidDSN
from stackwatch.exporters.collector import Intervals
from stackwatch.exporters.postgres import KIND, PostgresOptions
from stackwatch.exporters.postgres.settings import SettingsCollector
from stackwatch.exporters.postgres.target import PostgresTarget
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import free_port


def make_target(dsn: str) -> PostgresTarget:
    return PostgresTarget("t", dsn, [SettingsCollector()], Intervals(fast=0.05, slow=0.05), PostgresOptions())


def value(target: PostgresTarget, name: str, **labels: str) -> float | None:
    for family in target.families():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


def test_restart_shows_down_then_up_without_exporter_restart(postgres_factory) -> None:
    server: PostgresServer = postgres_factory()
    target = make_target(server.monitor_dsn)
    target.refresh()
    assert value(target, "pg_up") == 1
    assert value(target, "pg_settings_max_connections") == 100
    server.stop()
    time.sleep(0.1)  # both tiers (0.05 s) are due again
    target.refresh()
    assert value(target, "pg_up") == 0
    assert value(target, "pg_settings_max_connections") is None  # no stale data while down
    server.start()
    target.refresh()
    assert value(target, "pg_up") == 1
    assert value(target, "pg_settings_max_connections") == 100
    target.close()


def test_wrong_password_is_reported_as_authentication(postgres: PostgresServer, caplog) -> None:
    target = make_target(postgres.dsn(user="stackwatch_monitor", password="wrong-pass-123"))
    target.refresh()
    assert value(target, "pg_up") == 0
    assert value(target, "pg_connection_error", reason="authentication") == 1
    assert "wrong-pass-123" not in caplog.text


def test_unreachable_host_is_reported(caplog) -> None:
    target = make_target(f"postgresql://u:pw-xyz@127.0.0.1:{free_port()}/db")
    target.refresh()
    assert value(target, "pg_connection_error", reason="unreachable") == 1
    assert "pw-xyz" not in caplog.text


def test_missing_database_is_reported(postgres: PostgresServer) -> None:
    target = make_target(postgres.dsn("no_such_db", user="stackwatch_monitor"))
    target.refresh()
    assert value(target, "pg_connection_error", reason="database_missing") == 1


def test_missing_connect_privilege_is_reported(postgres: PostgresServer) -> None:
    postgres.create_database("locked_db")
    postgres.query("REVOKE CONNECT ON DATABASE locked_db FROM PUBLIC")
    target = make_target(postgres.dsn("locked_db", user="stackwatch_monitor"))
    target.refresh()
    assert value(target, "pg_connection_error", reason="permission") == 1


def test_malformed_dsn_fails_before_start_without_the_password() -> None:
    with pytest.raises(InvalidDSN) as info:
        make_target("postgresql://u:hunter2@h/db extra=")
    assert "hunter2" not in str(info.value)


def test_exporter_connection_is_tagged_and_bounded(postgres: PostgresServer) -> None:
    """Each tier keeps its own connection between polls, tagged and bounded."""
    from stackwatch.exporters.postgres.activity import ActivityCollector

    target = PostgresTarget("t", postgres.monitor_dsn, [ActivityCollector(), SettingsCollector()],
                            Intervals(fast=0.05, slow=0.05), PostgresOptions())
    target.refresh()
    rows = postgres.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stackwatch'")
    assert rows[0][0] == 2
    source = target.open()
    assert source.rows("SHOW statement_timeout")[0]["statement_timeout"] == "5s"
    assert source.rows("SHOW lock_timeout")[0]["lock_timeout"] == "100ms"
    target.close_source(source)
    target.close()


def test_target_names_carry_no_secret() -> None:
    from stackwatch.exporters.postgres import target_name

    assert target_name("postgresql://u:hunter2@db.example:6543/orders") == "db.example:6543/orders"
    assert KIND.prefix == "pg"


def test_concurrent_scrapes_send_no_query(postgres: PostgresServer) -> None:
    """Twenty scrapers at once over HTTP, on /metrics and /probe, between two polls: the exporter's
    one connection runs nothing (its last query is still the poll's) and no connection is opened."""
    import threading

    import httpx

    from stackwatch.exporters.postgres import COLLECTORS
    from stackwatch.exporters.server import Exporter, ExporterHTTPServer
    from tests.fixtures.procs import wait_until

    hour = Intervals(fast=3600, slow=3600, rare=3600)
    target = PostgresTarget("t", postgres.monitor_dsn, [cls() for cls in COLLECTORS if cls.default_enabled],
                            hour, PostgresOptions())
    exporter = Exporter([target], {"t": target})
    http = ExporterHTTPServer(("127.0.0.1", 0), exporter)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    exporter.start()
    base = f"http://127.0.0.1:{http.server_address[1]}"

    def exporter_backends() -> list[tuple[object, ...]]:
        return postgres.query("SELECT pid, backend_start, xact_start, query_start, state_change, query "
                              "FROM pg_stat_activity WHERE application_name = 'stackwatch' ORDER BY pid")

    try:
        wait_until(exporter.ready, 30, "the first poll")
        before = exporter_backends()
        failures: list[str] = []

        def scrape() -> None:
            for path in ("/metrics", "/probe?target=t") * 3:
                response = httpx.get(base + path, timeout=30)
                if response.status_code != 200 or 'pg_up{server="t"} 1.0' not in response.text:
                    failures.append(f"{path}: {response.status_code}")

        scrapers = [threading.Thread(target=scrape) for _ in range(20)]
        for thread in scrapers:
            thread.start()
        for thread in scrapers:
            thread.join(60)
        assert not failures
        assert len(before) == 2 and exporter_backends() == before  # the fast and the slow tier's
    finally:
        http.shutdown()
        http.server_close()
        exporter.stop()


def test_a_full_server_is_reported_as_too_many_connections(postgres_factory, caplog) -> None:
    """Every slot taken (max_connections 3, none reserved): the reason the runbook names."""
    server: PostgresServer = postgres_factory(max_connections=3, superuser_reserved_connections=0)
    holders = [server.connect() for _ in range(3)]
    try:
        target = make_target(server.monitor_dsn)
        target.refresh()
        assert value(target, "pg_up") == 0
        assert value(target, "pg_connection_error", reason="too_many_connections") == 1
        assert "monitor-secret" not in caplog.text
    finally:
        for conn in holders:
            conn.close()


def test_a_connection_limit_of_the_role_is_reported_as_too_many_connections(postgres: PostgresServer) -> None:
    postgres.query("DROP ROLE IF EXISTS stackwatch_limited")
    postgres.query("CREATE ROLE stackwatch_limited LOGIN PASSWORD 'limited-pw' CONNECTION LIMIT 0 IN ROLE pg_monitor")
    target = make_target(postgres.dsn(user="stackwatch_limited", password="limited-pw"))
    target.refresh()
    assert value(target, "pg_connection_error", reason="too_many_connections") == 1


def test_ssl_required_by_the_client_but_not_offered_is_reported_as_tls(postgres: PostgresServer) -> None:
    target = make_target(postgres.monitor_dsn + "?sslmode=require")
    target.refresh()
    assert value(target, "pg_up") == 0
    assert value(target, "pg_connection_error", reason="tls") == 1


def test_collectors_report_failure_while_the_target_is_down(postgres_factory) -> None:
    server: PostgresServer = postgres_factory()
    target = make_target(server.monitor_dsn)
    target.refresh()
    assert value(target, "pg_scrape_collector_success", collector="settings") == 1
    server.stop()
    try:
        time.sleep(0.1)
        target.refresh()
        assert value(target, "pg_up") == 0
        assert value(target, "pg_scrape_collector_success", collector="settings") == 0
        assert value(target, "pg_settings_max_connections") is None
    finally:
        server.start()
    target.refresh()
    assert value(target, "pg_scrape_collector_success", collector="settings") == 1
    target.close()


def test_a_full_server_keeps_the_fast_tier_and_its_saturation(postgres_factory, caplog) -> None:
    """The slow tier's session is gone and every slot is taken: the fast tier keeps its
    connection, so pg_up stays 1 and the saturation it measures is served; only the slow tier,
    which cannot reconnect, fails (success 0) until a slot frees up."""
    from stackwatch.exporters.collector import Tier
    from stackwatch.exporters.postgres.activity import ActivityCollector

    server: PostgresServer = postgres_factory(max_connections=5, superuser_reserved_connections=0)
    target = PostgresTarget("t", server.monitor_dsn, [ActivityCollector(), SettingsCollector()],
                            Intervals(fast=0.05, slow=0.05), PostgresOptions())
    target.refresh()
    slow = target._lanes[Tier.SLOW].source
    assert slow is not None
    server.query("SELECT pg_terminate_backend(%s)", (slow.conn.info.backend_pid,))
    holders = []
    try:
        while True:
            try:
                holders.append(server.connect())
            except Exception:  # noqa: BLE001 - the server is full
                break
        for _ in range(2):  # the slow tier meets its lost session, then cannot reconnect
            time.sleep(0.6)
            target.refresh()
        assert value(target, "pg_up") == 1
        assert value(target, "pg_connections_saturation_ratio") == 1
        assert value(target, "pg_scrape_collector_success", collector="activity") == 1
        assert value(target, "pg_scrape_collector_success", collector="settings") == 0
        assert value(target, "pg_settings_max_connections") is None
        assert "slow tier cannot poll (too_many_connections)" in caplog.text
    finally:
        for conn in holders:
            conn.close()
    time.sleep(0.6)
    target.refresh()
    assert value(target, "pg_scrape_collector_success", collector="settings") == 1
    target.close()
