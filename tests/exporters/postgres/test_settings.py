"""The settings collector: defaults of every version and custom values, in base units."""

from __future__ import annotations

import time

import pytest

from stackwatch.core.postgres.settings import setting_name, to_base_unit
from stackwatch.exporters.postgres.settings import SettingsCollector
from tests.exporters.postgres.collect import collector, value, values
from tests.fixtures.postgres import PostgresServer

MB = 1024 * 1024


collect = collector(SettingsCollector)


def test_fixture_defaults_in_base_units(postgres_any_version: PostgresServer) -> None:
    families = collect(postgres_any_version)
    assert value(families, "pg_settings_max_connections") == 100
    assert value(families, "pg_settings_superuser_reserved_connections") == 3
    assert value(families, "pg_settings_shared_buffers_bytes") == 128 * MB
    assert value(families, "pg_settings_work_mem_bytes") == 4 * MB
    assert value(families, "pg_settings_effective_cache_size_bytes") == 4096 * MB
    assert value(families, "pg_settings_log_min_duration_statement_seconds") == -1  # off
    assert value(families, "pg_settings_idle_in_transaction_session_timeout_seconds") == 0
    # the server's value, not the exporter session's own 5 s bound
    assert value(families, "pg_settings_statement_timeout_seconds") == 0
    assert value(families, "pg_settings_track_io_timing") == 1
    assert value(families, "pg_settings_pg_stat_statements_loaded") == 1
    assert value(families, "pg_server_version_num") == postgres_any_version.version
    # the postmaster of this (session-wide) fixture started before the poll, within the day
    [(started,)] = postgres_any_version.query("SELECT extract(epoch FROM pg_postmaster_start_time())::float8")
    assert value(families, "pg_postmaster_start_time_seconds") == pytest.approx(started)
    assert time.time() - 86400 < started <= time.time()


def test_every_numeric_setting_under_postgres_exporters_name(postgres_any_version: PostgresServer) -> None:
    families = collect(postgres_any_version)
    assert value(families, "pg_settings_checkpoint_timeout_seconds") == 300  # unit min... converted
    assert value(families, "pg_settings_random_page_cost") == 4  # real, no unit
    assert value(families, "pg_settings_wal_buffers_bytes") == 4 * MB  # -1 (auto) resolved, in 8kB units
    assert value(families, "pg_settings_pg_stat_statements_max") == 5000  # dots become underscores
    assert value(families, "pg_settings_autovacuum") == 1  # bool
    names = {f.name for f in families}
    expected = {setting_name(name, unit) for name, unit in postgres_any_version.query(
        "SELECT name, unit FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real')")}
    assert expected <= names and len(expected) > 200
    assert not any(n.startswith("pg_settings_") and "." in n for n in names)
    major, minor = str(postgres_any_version.version // 10000), str(postgres_any_version.version % 10000)
    static = values(families, "pg_static")
    [(labels, one)] = static.items()
    assert one == 1 and dict(labels)["short_version"] == f"{major}.{int(minor)}.0"
    assert dict(labels)["version"].startswith(f"PostgreSQL {major}.")


def test_custom_values(postgres_any_version: PostgresServer, postgres_factory) -> None:
    server: PostgresServer = postgres_factory(
        bindir=postgres_any_version.bindir, max_connections=17, superuser_reserved_connections=2,
        shared_buffers="'32MB'", work_mem="'8MB'", log_min_duration_statement=250, track_io_timing="off",
        idle_in_transaction_session_timeout="'90s'", statement_timeout="'30s'", shared_preload_libraries="''")
    families = collect(server)
    assert value(families, "pg_settings_max_connections") == 17
    assert value(families, "pg_settings_superuser_reserved_connections") == 2
    assert value(families, "pg_settings_shared_buffers_bytes") == 32 * MB
    assert value(families, "pg_settings_work_mem_bytes") == 8 * MB
    assert value(families, "pg_settings_log_min_duration_statement_seconds") == pytest.approx(0.25)
    assert value(families, "pg_settings_idle_in_transaction_session_timeout_seconds") == 90
    assert value(families, "pg_settings_statement_timeout_seconds") == 30
    assert value(families, "pg_settings_track_io_timing") == 0
    assert value(families, "pg_settings_pg_stat_statements_loaded") == 0


@pytest.mark.parametrize(("setting", "unit", "vartype", "expected"), [
    ("16384", "8kB", "integer", 128 * MB),
    ("4096", "kB", "integer", 4 * MB),
    ("1024", "MB", "integer", 1024 * MB),
    ("250", "ms", "integer", 0.25),
    ("-1", "ms", "integer", -1),
    ("60", "s", "integer", 60),
    ("100", None, "integer", 100),
    ("2", "16MB", "integer", 32 * MB),
    ("4", "32kB", "integer", 128 * 1024),
    ("0.5", "min", "real", 30),
    ("on", None, "bool", 1),
    ("off", None, "bool", 0),
])
def test_unit_conversion(setting: str, unit: str | None, vartype: str, expected: float) -> None:
    assert to_base_unit(setting, unit, vartype) == pytest.approx(expected)
