"""The statements collector: real statements on every PostgreSQL version, canned rows for selection."""

from __future__ import annotations

from dataclasses import astuple

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stackwatch.core.postgres.query_text import normalize_query
from stackwatch.core.postgres.source import PostgresOptions
from stackwatch.exporters.collector import CollectorDisabled, Intervals
from stackwatch.exporters.postgres.settings import SettingsCollector
from stackwatch.exporters.postgres.statements import (
    STICKY_WINDOWS,
    Counters,
    StatementsCollector,
    choose,
    window,
)
from stackwatch.exporters.postgres.target import PostgresTarget
from tests.exporters.postgres.collect import collect_once, monitor_source, server_with, value, values
from tests.fixtures.postgres import PostgresServer

DB = "sw_statements"
LOOKUP = "SELECT count(*) FROM items WHERE v = $1"


server = server_with(DB, "CREATE TABLE IF NOT EXISTS items (v int)")


def queryid(server: PostgresServer, text: str) -> str:
    rows = server.query("SELECT DISTINCT queryid FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                        "WHERE d.datname = %s AND query = %s", (DB, text))
    assert len(rows) == 1, rows
    return str(rows[0][0])


def run_many(server: PostgresServer, sql: str, params: list[tuple[object, ...]]) -> None:
    with server.connect(DB) as conn:
        for p in params:
            conn.execute(sql, p)


# -- against the real server ---------------------------------------------------------------
def test_window_top_statements_and_slow_count(server: PostgresServer) -> None:
    options = PostgresOptions(slow_statement_seconds=0.1, slow_statement_min_calls=2)
    collector = StatementsCollector()
    with monitor_source(server, options) as source:
        first = collector.collect(source)
        run_many(server, "SELECT count(*) FROM items WHERE v = %s", [(i,) for i in range(50)])
        run_many(server, "SELECT pg_sleep(%s)", [(0.15,), (0.15,)])
        second = collector.collect(source)

    lookup = queryid(server, LOOKUP)
    labels = {"user": "postgres", "datname": DB, "queryid": lookup, "command": "select"}
    before = value(first, "pg_stat_statements_calls_total", **labels) or 0.0
    assert value(second, "pg_stat_statements_calls_total", **labels) == before + 50
    assert value(second, "pg_stat_statements_rows_total", **labels) == before + 50
    assert value(second, "pg_stat_statements_query_info",
                 queryid=lookup, datname=DB, user="postgres", query=LOOKUP) == 1
    # only the two pg_sleep calls of this window were slower than 0.1 s on average
    assert value(second, "pg_stat_statements_slow_statements") == 1
    sleeper = {"user": "postgres", "datname": DB, "queryid": queryid(server, "SELECT pg_sleep($1)"),
               "command": "select"}
    assert value(second, "pg_stat_statements_mean_seconds", **sleeper) >= 0.15
    assert value(second, "pg_stat_statements_seconds_total", **sleeper) >= 0.3
    for name in ("pg_stat_statements_block_read_seconds_total", "pg_stat_statements_shared_blks_read_total",
                 "pg_stat_statements_temp_blks_written_total"):
        assert value(second, name, **labels) is not None, name
    # the instance totals grew by at least this window's 52 top-level calls
    grown = value(second, "pg_stat_statements_instance_calls_total") - value(
        first, "pg_stat_statements_instance_calls_total")
    assert grown >= 52
    assert value(second, "pg_stat_statements_instance_seconds_total") >= 0.3


def test_slow_count_leaves_out_one_offs_maintenance_and_monitoring(server: PostgresServer) -> None:
    """Slow all of them, yet none is the application's slow path: a one-off data load, a utility
    statement and the monitoring role's own query; each carries the command that says so."""
    options = PostgresOptions(slow_statement_seconds=0.1, slow_statement_min_calls=2)
    collector = StatementsCollector()
    with monitor_source(server, options) as source:
        collector.collect(source)
        run_many(server, "INSERT INTO items SELECT g FROM generate_series(1, 10) g WHERE pg_sleep(0.15) IS NOT NULL",
                 [()])
        with server.connect(DB) as conn:
            for _ in range(2):
                conn.execute("CREATE TEMP TABLE scratch AS SELECT pg_sleep(0.15)::text AS s")
                conn.execute("DROP TABLE scratch")
        with psycopg.connect(server.dsn(DB, user="stackwatch_monitor")) as monitor:
            for _ in range(2):
                monitor.execute("SELECT pg_sleep(%s), 'monitor'", (0.15,))
        second = collector.collect(source)
        assert value(second, "pg_stat_statements_slow_statements") == 0
        run_many(server, "SELECT pg_sleep(%s), 'app'", [(0.15,), (0.15,)])
        third = collector.collect(source)
    assert value(third, "pg_stat_statements_slow_statements") == 1
    commands = {(dict(labels)["user"], dict(labels)["queryid"]): dict(labels)["command"]
                for labels in values(third, "pg_stat_statements_calls_total")}
    load = "INSERT INTO items SELECT g FROM generate_series($1, $2) g WHERE pg_sleep($3) IS NOT NULL"
    assert commands[("postgres", queryid(server, load))] == "insert"
    sleep = queryid(server, "SELECT pg_sleep($1), $2")  # one queryid, two roles
    assert commands[("postgres", sleep)] == "select"
    assert commands[("stackwatch_monitor", sleep)] == "monitoring"
    assert "utility" in commands.values(), commands


def test_count_matches_the_view_and_series_are_bounded(server: PostgresServer) -> None:
    with server.connect(DB) as conn:
        for i in range(40):
            conn.execute(f"SELECT v AS c{i} FROM items")  # 40 distinct statements
    collector = StatementsCollector()
    with monitor_source(server, PostgresOptions(statements_top_n=10)) as source:
        families = collector.collect(source)
    distinct = server.query("SELECT count(*) FROM (SELECT DISTINCT userid, dbid, queryid "
                            "FROM pg_stat_statements) s")[0][0]
    exported = value(families, "pg_stat_statements_entries")
    assert 0 <= distinct - exported <= 2  # the exporter's and this check's own statements may be new
    for name in ("pg_stat_statements_calls_total", "pg_stat_statements_seconds_total",
                 "pg_stat_statements_query_info"):
        assert 1 <= len(values(families, name)) <= 10, name


def test_texts_are_read_only_for_newly_chosen_statements(server: PostgresServer) -> None:
    def text_reads() -> int:
        """Calls of the texts query so far, read untracked (a tracked check would be a new statement)."""
        with server.connect(options="-c pg_stat_statements.track=none") as conn:
            return int(conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
                "WHERE r.rolname = 'stackwatch_monitor' AND query LIKE '%SELECT DISTINCT ON (s.userid, s.dbid, s.queryid)%'"
            ).fetchone()[0])

    collector = StatementsCollector()
    with monitor_source(server) as source:
        collector.collect(source)
        collector.collect(source)  # the exporter's own first queries are new statements: their texts are read
        settled = text_reads()
        collector.collect(source)
        collector.collect(source)
    assert settled >= 1
    assert text_reads() == settled  # same statements chosen: texts come from the cache


def test_nested_and_top_level_runs_are_one_statement(server: PostgresServer) -> None:
    server.query("CREATE OR REPLACE FUNCTION nested_lookup() RETURNS bigint LANGUAGE plpgsql AS "
                 "$$ BEGIN RETURN (SELECT count(*) FROM items WHERE v = 7 AND v > 0); END $$", dbname=DB)
    collector = StatementsCollector()
    with monitor_source(server) as source:
        collector.collect(source)
        run_many(server, "SELECT nested_lookup()", [()] * 3)
        run_many(server, "SELECT (SELECT count(*) FROM items WHERE v = 7 AND v > 0)", [()] * 2)
        families = collector.collect(source)
    # one series per (user, datname, queryid), whatever pg_stat_statements' toplevel split (PostgreSQL 14+)
    calls = [s for f in families for s in f.samples if s.name == "pg_stat_statements_calls_total"]
    assert len(calls) == len({frozenset(s.labels.items()) for s in calls})
    inner = queryid(server, "SELECT (SELECT count(*) FROM items WHERE v = $1 AND v > $2)")
    assert value(families, "pg_stat_statements_calls_total", user="postgres", datname=DB, queryid=inner,
                 command="select") == 5


#: ALTER ROLE forms that escaped the old pattern; each password holds "Zq" and a word of its own
PASSWORD_FORMS = [
    "ALTER ROLE sw_victim PASSWORD'Zq-nospace'",
    "ALTER ROLE sw_victim PASSWORD U&'Zq-unicode\\0021'",
    "ALTER ROLE sw_victim PASSWORD /* why */ 'Zq-block'",
    "ALTER ROLE sw_victim PASSWORD -- why\n'Zq-line'",
    "ALTER ROLE sw_victim PASSWORD E'Zq-before\\'Zq-after'",
    "ALTER ROLE sw_victim WITH ENCRYPTED PASSWORD $pw$Zq-dollar$pw$ VALID UNTIL 'infinity'",
    "ALTER ROLE sw_victim PASSWORD 'Zq-first'\n'Zq-continued'",
]


def test_no_password_form_reaches_the_exposition(server: PostgresServer) -> None:
    """Real ALTER ROLE statements recorded by pg_stat_statements, then collected and rendered."""
    server.query("DROP ROLE IF EXISTS sw_victim")
    server.query("CREATE ROLE sw_victim")
    with server.connect(DB) as conn:
        for statement in PASSWORD_FORMS:
            conn.execute(statement)
        conn.execute("SET standard_conforming_strings = off")
        conn.execute("ALTER ROLE sw_victim PASSWORD 'Zq-scs\\'Zq-off' LOGIN")  # \' escapes a quote here
    recorded = server.query("SELECT query FROM pg_stat_statements WHERE query LIKE '%Zq-%'")
    assert len(recorded) == len(PASSWORD_FORMS) + 1, recorded  # the texts really hold the passwords
    families = collect_once(StatementsCollector(), server, PostgresOptions(statements_top_n=100_000))
    registry = CollectorRegistry()
    registry.register(type("Snapshot", (), {"collect": lambda self: families})())
    exposition = generate_latest(registry).decode()
    shown = [line for line in exposition.splitlines() if "sw_victim PASSWORD" in line or "ENCRYPTED PASSWORD" in line]
    assert len(shown) == len(PASSWORD_FORMS) + 1, shown
    assert "Zq" not in exposition, [line for line in exposition.splitlines() if "Zq" in line]


def test_a_library_preloaded_by_path_is_loaded(postgres_factory) -> None:
    """``$libdir/pg_stat_statements`` is pg_stat_statements; ``pg_stat_statements_x`` would not be."""
    server: PostgresServer = postgres_factory(shared_preload_libraries="'$libdir/pg_stat_statements'")
    with monitor_source(server) as source:
        assert source.preloaded("pg_stat_statements")
        assert not source.preloaded("pg_stat")
        assert value(SettingsCollector().collect(source), "pg_settings_pg_stat_statements_loaded") == 1
        StatementsCollector().collect(source)  # not disabled


def test_without_the_library_the_collector_is_disabled_and_the_rest_works(postgres_factory) -> None:
    bare: PostgresServer = postgres_factory(shared_preload_libraries="''")
    with monitor_source(bare) as source, pytest.raises(CollectorDisabled) as disabled:
        StatementsCollector().collect(source)
    assert disabled.value.reason == "extension_missing"

    target = PostgresTarget("t", bare.monitor_dsn, [SettingsCollector(), StatementsCollector()],
                            Intervals(), PostgresOptions())
    target.refresh()
    families = target.families()
    assert value(families, "pg_up") == 1
    assert value(families, "pg_settings_max_connections") == 100
    assert value(families, "pg_scrape_collector_disabled", collector="statements", reason="extension_missing") == 1
    assert value(families, "pg_scrape_collector_success", collector="statements") == 1
    target.close()


def test_without_the_extension_in_the_dsn_database_the_collector_is_disabled(server: PostgresServer) -> None:
    if not server.query("SELECT 1 FROM pg_database WHERE datname = 'sw_no_pgss'"):
        server.query("CREATE DATABASE sw_no_pgss")
    with monitor_source(server, dsn=server.dsn("sw_no_pgss", user="stackwatch_monitor")) as source, \
            pytest.raises(CollectorDisabled) as disabled:
        StatementsCollector().collect(source)
    assert disabled.value.reason == "extension_not_created"


# -- canned counters: the window, the choice, the text --------------------------------------
def c(calls: float = 0, seconds: float = 0, blks: float = 0, temp: float = 0) -> Counters:
    return Counters(calls=calls, seconds=seconds, rows=calls, blks_read=blks, read_seconds=0,
                    temp_blks_written=temp, top_calls=calls, top_seconds=seconds, top_rows=calls)


def test_window_is_the_increase_or_everything_after_a_reset() -> None:
    previous = {(1, 1, 1): c(10, 1.0), (1, 1, 2): c(10, 1.0)}
    current = {(1, 1, 1): c(15, 1.5), (1, 1, 2): c(3, 0.2), (1, 1, 3): c(4, 4.0)}
    w = window(current, previous)
    assert w[(1, 1, 1)] == c(5, 0.5)
    assert w[(1, 1, 2)] == c(3, 0.2)  # fewer calls than before: reset, the window is all of it
    assert w[(1, 1, 3)] == c(4, 4.0)  # new


def test_a_reset_of_the_top_level_entry_alone_is_a_reset() -> None:
    """The nested entry grew while the top-level one was evicted: calls went up, top_calls down."""
    before = Counters(calls=110, seconds=2.0, rows=110, blks_read=0, read_seconds=0, temp_blks_written=0,
                      top_calls=100, top_seconds=1.0, top_rows=100)
    now = Counters(calls=130, seconds=2.5, rows=130, blks_read=0, read_seconds=0, temp_blks_written=0,
                   top_calls=5, top_seconds=0.1, top_rows=5)
    w = window({(1, 1, 1): now}, {(1, 1, 1): before})[(1, 1, 1)]
    assert w == now
    assert all(value >= 0 for value in astuple(w))  # the instance totals never go down


def test_choice_is_the_union_of_the_tops_of_every_criterion() -> None:
    windows = {
        (1, 1, 1): c(calls=1000, seconds=1.0),   # top by calls
        (1, 1, 2): c(calls=10, seconds=50.0),    # top by total time
        (1, 1, 3): c(calls=1, seconds=20.0),     # top by mean time
        (1, 1, 4): c(calls=2, seconds=0.1, blks=10_000),  # top by blocks read
        (1, 1, 5): c(calls=2, seconds=0.1, temp=500),     # top by temp
        **{(1, 1, 100 + i): c(calls=5, seconds=0.01) for i in range(20)},  # the crowd
    }
    chosen = choose(windows, {}, limit=10)  # one per criterion fresh, the rest of the budget for stickiness
    assert set(chosen) == {(1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 1, 4), (1, 1, 5)}
    assert all(left == STICKY_WINDOWS for left in chosen.values())


def test_a_chosen_statement_sticks_for_a_few_windows_then_goes() -> None:
    star, crowd = (1, 1, 1), {(1, 1, 10 + i): c(calls=1, seconds=0.001) for i in range(3)}
    chosen = choose({star: c(calls=100, seconds=9), **crowd}, {}, limit=10)
    assert star in chosen
    for windows_later in range(1, STICKY_WINDOWS + 2):
        quiet = {star: c(), **{k: c(calls=50, seconds=1) for k in crowd}}  # star idle, still tracked
        chosen = choose(quiet, chosen, limit=10)
        assert (star in chosen) == (windows_later <= STICKY_WINDOWS), windows_later
    # a statement that left pg_stat_statements is dropped at once
    assert star not in choose({k: c(calls=1) for k in crowd}, {star: STICKY_WINDOWS}, limit=10)


def test_choice_never_exceeds_the_limit() -> None:
    windows = {(1, 1, i): c(calls=i + 1, seconds=(i % 7) + 0.1, blks=i * 3, temp=i % 5) for i in range(500)}
    sticky = {(2, 2, i): STICKY_WINDOWS for i in range(500)}
    windows.update({k: c() for k in sticky})
    for limit in (1, 3, 10, 100):
        chosen = choose(windows, sticky, limit)
        assert len(chosen) == limit
        if limit >= 10:  # fresh picks take at most half the budget: the rest goes to sticky ones
            assert sum(1 for k in chosen if k[0] == 2) >= limit // 2


def test_query_text_is_collapsed_truncated_on_a_character_and_redacted() -> None:
    assert normalize_query("SELECT  a,\n\t b\r\nFROM t", 512) == "SELECT a, b FROM t"
    text = "SELECT 'é' " + "é" * 300
    cut = normalize_query(text, 100)
    assert len(cut.encode()) <= 100 and cut.endswith("...")
    cut.encode().decode("utf-8")  # never half a character
    assert normalize_query("x" * 100, 100) == "x" * 100
    assert normalize_query("ALTER ROLE app PASSWORD 'hunter2'", 512) == "ALTER ROLE app PASSWORD '***'"
    assert "hunter2" not in normalize_query("CREATE USER u WITH ENCRYPTED PASSWORD 'it''s hunter2'", 512)
    assert normalize_query("ALTER ROLE app PASSWORD $$hunter2$$ VALID UNTIL 'infinity'", 512) == \
        "ALTER ROLE app PASSWORD '***' VALID UNTIL 'infinity'"
    assert "hunter2" not in normalize_query("ALTER ROLE app PASSWORD $pw$hunter2$pw$", 512)
    assert "s3cret" not in normalize_query("SELECT dblink_connect('host=h password=s3cret')", 512)
