"""The archiver collector: segments archived and failed by a real archive_command."""

from __future__ import annotations

from stackwatch.exporters.postgres.archiver import ArchiverCollector
from tests.exporters.postgres.collect import collector, value
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

collect = collector(ArchiverCollector)


def switch_wal(server: PostgresServer) -> None:
    server.query("CREATE TABLE IF NOT EXISTS archived (id int)")
    server.query("INSERT INTO archived VALUES (1)")  # a switch needs WAL since the last one
    server.query("SELECT pg_switch_wal()")


def test_archived_failed_and_age(postgres_any_version: PostgresServer, postgres_factory) -> None:
    server: PostgresServer = postgres_factory(bindir=postgres_any_version.bindir, archive_mode="on")
    fail = server.root / "fail"  # a directory the server's system user can see into
    server.query(f"ALTER SYSTEM SET archive_command = 'test ! -e {fail}'")  # fails once the file exists
    server.query("SELECT pg_reload_conf()")
    fresh = collect(server)
    assert value(fresh, "pg_stat_archiver_archived_count") == 0
    assert value(fresh, "pg_stat_archiver_last_archive_age") is None  # never archived: absent, not 0
    switch_wal(server)
    wait_until(lambda: value(collect(server), "pg_stat_archiver_archived_count") >= 1, 30, "a segment archived")
    assert 0 <= value(collect(server), "pg_stat_archiver_last_archive_age") < 60
    fail.touch()
    switch_wal(server)
    wait_until(lambda: value(collect(server), "pg_stat_archiver_failed_count") >= 1, 30, "a failed attempt")
