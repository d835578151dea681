"""The progress_vacuum collector: a real VACUUM, slowed down by cost-based delay, seen mid-way."""

from __future__ import annotations

import threading

import psycopg
import pytest

from stackwatch.exporters.postgres.progress_vacuum import PHASES, ProgressVacuumCollector
from tests.exporters.postgres.collect import collector, value, values
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB = "sw_progress_vacuum"


collect = collector(ProgressVacuumCollector)


@pytest.fixture(scope="module")
def server(postgres_any_version: PostgresServer) -> PostgresServer:
    postgres_any_version.create_database(DB)
    postgres_any_version.query("DROP TABLE IF EXISTS crawled; CREATE TABLE crawled (id int, pad text) "
                               "WITH (autovacuum_enabled = off)", dbname=DB)
    postgres_any_version.query("INSERT INTO crawled SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
                               dbname=DB)
    postgres_any_version.query("DELETE FROM crawled WHERE id % 2 = 0", dbname=DB)
    return postgres_any_version


def test_nothing_runs_no_series(server: PostgresServer) -> None:
    assert values(collect(server), "pg_stat_progress_vacuum_heap_blks") == {}


def test_a_running_vacuum_with_its_phase_and_progress(server: PostgresServer) -> None:
    blocks, oid = server.query("SELECT pg_relation_size('crawled') / current_setting('block_size')::int, "
                               "'crawled'::regclass::oid", dbname=DB)[0]
    conn = server.connect(DB)
    pid = conn.info.backend_pid
    conn.execute("SET vacuum_cost_delay = '100ms'")
    conn.execute("SET vacuum_cost_limit = 1")  # every page sleeps: the VACUUM crawls

    def vacuum() -> None:
        try:
            conn.execute("VACUUM crawled")
        except psycopg.errors.QueryCanceled:
            pass

    worker = threading.Thread(target=vacuum)
    worker.start()
    try:
        # the exporter is connected to another database, where the table's name cannot be looked up
        table = {"datname": DB, "relname": str(oid)}
        wait_until(lambda: (value(collect(server), "pg_stat_progress_vacuum_heap_blks_scanned", **table) or 0) > 0,
                   30, "the VACUUM to scan a block")
        families = collect(server)
    finally:
        server.query("SELECT pg_cancel_backend(%s)", (pid,))
        worker.join(30)
        conn.close()
    assert value(families, "pg_stat_progress_vacuum_heap_blks", **table) == blocks
    assert 0 < value(families, "pg_stat_progress_vacuum_heap_blks_scanned", **table) < blocks
    assert value(families, "pg_stat_progress_vacuum_index_vacuums", **table) == 0
    assert value(families, "pg_stat_progress_vacuum_max_dead_tuples", **table) > 0
    phases = {dict(k)["phase"]: v for k, v in values(families, "pg_stat_progress_vacuum_phase").items()}
    assert set(phases) == set(PHASES) and phases["scanning heap"] == 1 and sum(phases.values()) == 1
