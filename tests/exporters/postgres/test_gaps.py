"""Gaps a poll cannot fill are exported, not hidden behind success=1: a role without
pg_monitor, databases the exporter cannot read, a setting it cannot see."""

from __future__ import annotations

import logging
import re
import time

import pytest

from stackwatch.exporters.collector import Intervals
from stackwatch.exporters.postgres import PostgresOptions
from stackwatch.exporters.postgres.activity import ActivityCollector
from stackwatch.exporters.postgres.indexes import IndexesCollector
from stackwatch.exporters.postgres.settings import SettingsCollector
from stackwatch.exporters.postgres.tables import TablesCollector
from stackwatch.exporters.postgres.target import PostgresTarget
from tests.fixtures.postgres import PostgresServer

PLAIN_ROLE = "stackwatch_plain"
PLAIN_PASSWORD = "plain-secret"


def samples(target: PostgresTarget, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value for f in target.families() for s in f.samples if s.name == name}


def value(target: PostgresTarget, name: str, **labels: str) -> float | None:
    return samples(target, name).get(frozenset(labels.items()))


@pytest.fixture(scope="module")
def plain_dsn(postgres: PostgresServer) -> str:
    """A login role without pg_monitor (nor pg_read_all_stats / pg_read_all_settings)."""
    if not postgres.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (PLAIN_ROLE,)):
        postgres.query(f"CREATE ROLE {PLAIN_ROLE} LOGIN PASSWORD '{PLAIN_PASSWORD}'")
    return postgres.dsn(user=PLAIN_ROLE, password=PLAIN_PASSWORD)


def poll(dsn: str, *collectors: object, options: PostgresOptions | None = None) -> PostgresTarget:
    target = PostgresTarget("t", dsn, list(collectors), Intervals(fast=0.01, slow=0.01),  # type: ignore[arg-type]
                            options or PostgresOptions())
    target.refresh()
    return target


def test_activity_without_pg_monitor_is_degraded_and_says_what_to_grant(
        postgres: PostgresServer, plain_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    others = [postgres.connect() for _ in range(3)]  # other roles' sessions, their details hidden
    try:
        with caplog.at_level(logging.WARNING, logger="stackwatch.exporters"):
            target = poll(plain_dsn, ActivityCollector())
            target.close()
            time.sleep(0.02)
            target.refresh()  # a second poll: still degraded, not logged again
        assert value(target, "pg_scrape_collector_success", collector="activity") == 1
        assert value(target, "pg_scrape_collector_degraded", collector="activity",
                     reason="insufficient_privilege") == 1
        # the hidden sessions still count against max_connections (state unknown)
        used = value(target, "pg_connections_used")
        assert used is not None and used >= 4
        hidden = value(target, "pg_stat_activity_count", datname="postgres", usename="postgres",
                       application_name="", state="unknown")
        assert hidden is not None and hidden >= 3
        lines = [r.getMessage() for r in caplog.records if "insufficient_privilege" in r.getMessage()]
        assert len(lines) == 1
        assert f"GRANT pg_monitor (or pg_read_all_stats) TO {PLAIN_ROLE}" in lines[0]
        assert PLAIN_PASSWORD not in caplog.text
        target.close()
    finally:
        for conn in others:
            conn.close()


def test_activity_with_pg_monitor_is_not_degraded(postgres: PostgresServer) -> None:
    target = poll(postgres.monitor_dsn, ActivityCollector())
    assert value(target, "pg_scrape_collector_success", collector="activity") == 1
    assert samples(target, "pg_scrape_collector_degraded") == {}
    target.close()


def test_settings_without_pg_monitor_keep_every_readable_setting(postgres: PostgresServer, plain_dsn: str) -> None:
    """shared_preload_libraries is hidden from the plain role: the other settings still come."""
    target = poll(plain_dsn, SettingsCollector())
    assert value(target, "pg_scrape_collector_success", collector="settings") == 1
    assert value(target, "pg_settings_max_connections") == 100
    assert value(target, "pg_settings_pg_stat_statements_loaded") is None
    assert value(target, "pg_scrape_collector_degraded", collector="settings", reason="insufficient_privilege") == 1
    target.close()
    monitored = poll(postgres.monitor_dsn, SettingsCollector())
    assert value(monitored, "pg_settings_pg_stat_statements_loaded") == 1
    assert samples(monitored, "pg_scrape_collector_degraded") == {}
    monitored.close()


def test_a_database_without_connect_is_exported_as_skipped(
        postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("gaps_open", "gaps_locked"):
        postgres.create_database(name)
        postgres.query("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)", dbname=name)
    postgres.query("REVOKE CONNECT ON DATABASE gaps_locked FROM PUBLIC")
    options = PostgresOptions(include_databases=re.compile("^gaps_"))
    with caplog.at_level(logging.WARNING, logger="stackwatch.exporters"):
        target = poll(postgres.monitor_dsn, TablesCollector(), IndexesCollector(), options=options)
        time.sleep(0.02)
        target.refresh()
    for collector in ("tables", "indexes"):
        assert value(target, "pg_scrape_collector_success", collector=collector) == 1
        assert value(target, "pg_scrape_collector_degraded", collector=collector, reason="databases_skipped") == 1
        assert value(target, "pg_database_skipped", collector=collector, datname="gaps_locked",
                     reason="permission") == 1
        assert value(target, "pg_database_skipped", collector=collector, datname="gaps_open",
                     reason="permission") is None
    assert value(target, "pg_stat_user_tables_size_bytes", datname="gaps_open", schemaname="public", relname="t")
    lines = [r.getMessage() for r in caplog.records if "databases_skipped" in r.getMessage()]
    assert len(lines) == 2 and all("gaps_locked (permission)" in line for line in lines)  # once per collector
    postgres.query("GRANT CONNECT ON DATABASE gaps_locked TO PUBLIC")
    time.sleep(0.02)
    target.refresh()
    assert samples(target, "pg_database_skipped") == {}
    assert samples(target, "pg_scrape_collector_degraded") == {}
    target.close()
