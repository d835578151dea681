"""The checkpointer collector: a real CHECKPOINT after dirtying pages, on every version."""

from __future__ import annotations

import time

import pytest

from stackwatch.exporters.postgres.checkpointer import SQL_17, SQL_BEFORE_17, CheckpointerCollector, checkpointer_sql
from tests.exporters.postgres.collect import collector, server_with, value
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB = "sw_checkpointer"
PREFIX = "pg_stat_bgwriter_"


server = server_with(DB, "CREATE TABLE IF NOT EXISTS pages (id int, pad text)")
collect = collector(CheckpointerCollector)


def settled(server: PostgresServer) -> list:
    """Counters once earlier checkpoints (CREATE DATABASE runs one before PostgreSQL 15) have been
    counted: PostgreSQL 13's stats collector serves snapshots up to 500 ms old."""
    previous = collect(server)
    for _ in range(30):
        time.sleep(0.6)
        current = collect(server)
        if value(current, PREFIX + "checkpoints_req_total") == value(previous, PREFIX + "checkpoints_req_total"):
            return current
        previous = current
    raise TimeoutError("checkpoint counters kept changing for 18 s")


def test_checkpoint_is_counted_as_requested_with_its_buffers(server: PostgresServer) -> None:
    before = settled(server)
    server.query("INSERT INTO pages SELECT g, repeat('x', 200) FROM generate_series(1, 5000) AS g", dbname=DB)
    server.query("CHECKPOINT")
    requested = value(before, PREFIX + "checkpoints_req_total") + 1
    wait_until(lambda: value(collect(server), PREFIX + "checkpoints_req_total") >= requested, 20,
               "the checkpoint to be counted")
    after = collect(server)
    assert value(after, PREFIX + "checkpoints_req_total") == requested
    assert value(after, PREFIX + "buffers_checkpoint_total") - value(before, PREFIX + "buffers_checkpoint_total") >= 1
    for name in ("checkpoint_write_time_seconds_total", "checkpoint_sync_time_seconds_total", "buffers_clean_total",
                 "buffers_backend_total", "buffers_alloc_total", "checkpoints_timed_total", "maxwritten_clean_total"):
        assert value(after, PREFIX + name) >= value(before, PREFIX + name) >= 0, name


def test_values_come_from_the_versions_own_view(server: PostgresServer) -> None:
    if server.version >= 170000:
        view = "SELECT num_requested, buffers_written, write_time FROM pg_stat_checkpointer"
    else:
        view = "SELECT checkpoints_req, buffers_checkpoint, checkpoint_write_time FROM pg_stat_bgwriter"
    families = collect(server)
    requested, written, write_ms = server.query(view)[0]
    assert value(families, PREFIX + "checkpoints_req_total") == requested
    assert value(families, PREFIX + "buffers_checkpoint_total") == written
    assert value(families, PREFIX + "checkpoint_write_time_seconds_total") == pytest.approx(write_ms / 1000)
    assert {f.type for f in families} == {"counter"}


def test_postgres_exporter_names_units_and_fsyncs(server: PostgresServer) -> None:
    if server.version >= 170000:  # the backends' own fsyncs moved to pg_stat_io
        fsync_sql = ("SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'relation' "
                     "AND backend_type NOT IN ('checkpointer', 'background writer')")
    else:
        fsync_sql = "SELECT buffers_backend_fsync FROM pg_stat_bgwriter"
    families = collect(server)
    assert value(families, PREFIX + "buffers_backend_fsync_total") == server.query(fsync_sql)[0][0]
    for kind in ("write", "sync"):  # postgres_exporter's names are in milliseconds
        assert value(families, PREFIX + f"checkpoint_{kind}_time_total") == \
            pytest.approx(value(families, PREFIX + f"checkpoint_{kind}_time_seconds_total") * 1000)
    reset = server.query("SELECT extract(epoch FROM stats_reset)::float8 FROM pg_stat_bgwriter")[0][0]
    assert value(families, PREFIX + "stats_reset_total") == pytest.approx(reset)


def test_sql_follows_the_version() -> None:
    assert checkpointer_sql(130023) is SQL_BEFORE_17 and checkpointer_sql(160004) is SQL_BEFORE_17
    assert checkpointer_sql(170000) is SQL_17 and checkpointer_sql(180001) is SQL_17
