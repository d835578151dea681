"""The tables collector against real tables in several databases, and its pure scoring."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator

import psycopg
import pytest

from stackwatch.core.postgres.source import PostgresOptions
from stackwatch.core.postgres.tables import MIN_SEQ_SCANS, suspect_score
from stackwatch.exporters.postgres.relations import split_top
from stackwatch.exporters.postgres.tables import OtherCounters, TablesCollector
from tests.exporters.postgres.collect import collector, monitor_source, value, values
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB, DB2 = "sw_tables", "sw_tables_two"
STATS_SQL = """
SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0), n_live_tup, n_dead_tup,
       pg_total_relation_size(relid)
FROM pg_stat_user_tables
"""


def seed(server: PostgresServer, db: str, sql: str) -> None:
    with server.connect(db) as conn:
        conn.execute(sql)


def stats(server: PostgresServer, db: str) -> dict[str, tuple[int, ...]]:
    return {r[0]: tuple(r[1:]) for r in server.query(STATS_SQL, dbname=db)}


@pytest.fixture(scope="module")
def server(postgres_any_version: PostgresServer) -> Iterator[PostgresServer]:
    """``big`` (5,000 rows, only ever scanned sequentially), ``indexed`` (5,000 rows, read by key),
    ``tiny`` (10 rows, scanned all the time) and ``dead`` (rows deleted) in one database, ``elsewhere``
    in a second one."""
    server = postgres_any_version
    for db in (DB, DB2):
        server.create_database(db)
    seed(server, DB, """
        DROP TABLE IF EXISTS big, indexed, tiny, dead;
        CREATE TABLE big (id int, v int);
        INSERT INTO big SELECT g, g % 100 FROM generate_series(1, 5000) g;
        CREATE TABLE indexed (id int PRIMARY KEY, v int);
        INSERT INTO indexed SELECT g, g FROM generate_series(1, 5000) g;
        CREATE TABLE tiny (id int);
        INSERT INTO tiny SELECT generate_series(1, 10);
        CREATE TABLE dead (id int);
        INSERT INTO dead SELECT generate_series(1, 300);
        DELETE FROM dead WHERE id <= 120;
    """)
    seed(server, DB, "VACUUM ANALYZE indexed")
    seed(server, DB2, "DROP TABLE IF EXISTS elsewhere; CREATE TABLE elsewhere (id int); "
                      "INSERT INTO elsewhere SELECT generate_series(1, 50)")
    with server.connect(DB) as conn:
        for i in range(12):
            conn.execute("SELECT count(*) FROM big WHERE v = %s", (i,))
            conn.execute("SELECT count(*) FROM tiny WHERE id = %s", (i,))
        for i in range(1, 200):
            conn.execute("SELECT v FROM indexed WHERE id = %s", (i,))
    # statistics reach the views when the backends flush them (at exit, asynchronously)
    wait_until(lambda: stats(server, DB).get("indexed", (0,) * 8)[2] >= 199
               and stats(server, DB)["big"][0] >= 12 and stats(server, DB)["dead"][5] == 120,
               30, "table statistics to be flushed")
    yield server


collect = collector(TablesCollector)


def test_every_table_of_every_database_with_exact_counters(server: PostgresServer) -> None:
    families = collect(server, top_n=1000)
    for db in (DB, DB2):
        for relname, row in stats(server, db).items():
            labels = {"datname": db, "schemaname": "public", "relname": relname}
            seq_scan, seq_tup_read, idx_scan, _, live, dead, size = row
            assert value(families, "pg_stat_user_tables_seq_scan", **labels) == seq_scan
            assert value(families, "pg_stat_user_tables_seq_tup_read", **labels) == seq_tup_read
            assert value(families, "pg_stat_user_tables_idx_scan", **labels) == idx_scan
            assert value(families, "pg_stat_user_tables_n_live_tup", **labels) == live
            assert value(families, "pg_stat_user_tables_n_dead_tup", **labels) == dead
            assert value(families, "pg_stat_user_tables_size_bytes", **labels) == size
    assert value(families, "pg_stat_user_tables_n_dead_tup", datname=DB, schemaname="public", relname="dead") == 120
    assert value(families, "pg_stat_user_tables_n_live_tup", datname=DB, schemaname="public", relname="big") == 5000


PEER_SQL = """
SELECT s.relname, coalesce(s.idx_tup_fetch, 0), s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_tup_hot_upd, s.n_mod_since_analyze,
       s.vacuum_count, s.autovacuum_count, s.analyze_count, s.autoanalyze_count,
       extract(epoch FROM s.last_vacuum)::float8, extract(epoch FROM s.last_analyze)::float8,
       pg_table_size(s.relid), pg_indexes_size(s.relid), io.heap_blks_read, io.heap_blks_hit, io.idx_blks_hit
FROM pg_stat_user_tables s JOIN pg_statio_user_tables io ON io.relid = s.relid
"""
PEER_FAMILIES = ("pg_stat_user_tables_idx_tup_fetch", "pg_stat_user_tables_n_tup_ins", "pg_stat_user_tables_n_tup_upd",
                 "pg_stat_user_tables_n_tup_del", "pg_stat_user_tables_n_tup_hot_upd",
                 "pg_stat_user_tables_n_mod_since_analyze", "pg_stat_user_tables_vacuum_count",
                 "pg_stat_user_tables_autovacuum_count", "pg_stat_user_tables_analyze_count",
                 "pg_stat_user_tables_autoanalyze_count", "pg_stat_user_tables_last_vacuum",
                 "pg_stat_user_tables_last_analyze", "pg_stat_user_tables_table_size_bytes",
                 "pg_stat_user_tables_index_size_bytes", "pg_statio_user_tables_heap_blocks_read",
                 "pg_statio_user_tables_heap_blocks_hit", "pg_statio_user_tables_idx_blocks_hit")


def test_postgres_exporter_table_families_match_the_views(server: PostgresServer) -> None:
    families = collect(server, top_n=1000)
    for relname, *expected in server.query(PEER_SQL, dbname=DB):
        labels = {"datname": DB, "schemaname": "public", "relname": relname}
        for name, want in zip(PEER_FAMILIES, expected):
            assert value(families, name, **labels) == (None if want is None else pytest.approx(float(want))), name
    indexed = {"datname": DB, "schemaname": "public", "relname": "indexed"}
    assert value(families, "pg_stat_user_tables_n_tup_ins", **indexed) == 5000
    assert value(families, "pg_stat_user_tables_vacuum_count", **indexed) == 1
    assert value(families, "pg_stat_user_tables_last_vacuum", datname=DB, schemaname="public", relname="tiny") is None
    # the size the ranking uses is the sum of the two halves postgres_exporter exports
    assert value(families, "pg_stat_user_tables_size_bytes", **indexed) == \
        value(families, "pg_stat_user_tables_table_size_bytes", **indexed) + \
        value(families, "pg_stat_user_tables_index_size_bytes", **indexed)
    assert value(families, "pg_stat_user_tables_index_size_bytes", **indexed) > 0


def test_vacuum_and_analyze_age(server: PostgresServer) -> None:
    families = collect(server, top_n=1000)
    indexed = {"datname": DB, "schemaname": "public", "relname": "indexed"}
    assert 0 <= value(families, "pg_stat_user_tables_last_vacuum_age_seconds", **indexed) < 600
    assert 0 <= value(families, "pg_stat_user_tables_last_analyze_age_seconds", **indexed) < 600
    # never vacuumed or analyzed: no sample rather than a made-up age
    tiny = {"datname": DB, "schemaname": "public", "relname": "tiny"}
    assert value(families, "pg_stat_user_tables_last_vacuum_age_seconds", **tiny) is None


def test_top_n_by_size_and_an_other_rollup_per_database(server: PostgresServer) -> None:
    families = collect(server, top_n=2, include_databases=re.compile(f"^({DB}|{DB2})$"))
    sizes = values(families, "pg_stat_user_tables_size_bytes")
    individual = {dict(k)["relname"]: v for k, v in sizes.items() if dict(k)["relname"] != "other"}
    assert set(individual) == {"big", "indexed"}  # the two largest of the instance
    first, second = stats(server, DB), stats(server, DB2)
    other = {"datname": DB, "schemaname": "pg_other", "relname": "other"}
    assert value(families, "pg_stat_user_tables_size_bytes", **other) == first["tiny"][6] + first["dead"][6]
    assert value(families, "pg_stat_user_tables_seq_scan", **other) == first["tiny"][0] + first["dead"][0]
    assert value(families, "pg_stat_user_tables_n_dead_tup", **other) == 120
    assert value(families, "pg_stat_user_tables_n_tup_ins", **other) == 10 + 300  # tiny + dead
    assert value(families, "pg_stat_user_tables_last_vacuum", **other) is None  # no timestamp for a rollup
    assert value(families, "pg_stat_user_tables_n_live_tup",
                 datname=DB2, schemaname="pg_other", relname="other") == second["elsewhere"][4]
    assert len(sizes) == 4  # 2 tables + one rollup per database


def test_a_real_other_other_table_never_collides_with_the_rollup(server: PostgresServer) -> None:
    """A real ``other.other`` in the top N and the rollup of the rest: two series, never one label
    set twice (the rollup was ``other.other`` too: duplicate series with different values)."""
    db = "sw_tables_other"
    server.create_database(db)
    seed(server, db, """
        DROP SCHEMA IF EXISTS other CASCADE; DROP TABLE IF EXISTS small_a, small_b;
        CREATE SCHEMA other; CREATE TABLE other.other (id int);
        INSERT INTO other.other SELECT generate_series(1, 3000);
        CREATE TABLE small_a (id int); CREATE TABLE small_b (id int);
        INSERT INTO small_a VALUES (1), (2);
    """)
    with pytest.raises(psycopg.errors.ReservedName):  # why the rollup's schema is never a real one
        seed(server, db, "CREATE SCHEMA pg_other")
    wait_until(lambda: stats(server, db).get("other", (0,) * 8)[4] == 3000 and stats(server, db)["small_a"][4] == 2,
               30, "table statistics")
    families = collect(server, top_n=1, include_databases=re.compile(f"^{db}$"))
    for family in families:
        label_sets = [tuple(sorted(s.labels.items())) for s in family.samples]
        assert len(label_sets) == len(set(label_sets)), family.name
    live = values(families, "pg_stat_user_tables_n_live_tup")
    real = frozenset({"datname": db, "schemaname": "other", "relname": "other"}.items())
    rollup = frozenset({"datname": db, "schemaname": "pg_other", "relname": "other"}.items())
    assert live == {real: 3000, rollup: 2}


def test_include_and_exclude_databases(server: PostgresServer) -> None:
    only_second = collect(server, include_databases=re.compile(f"^{DB2}$"))
    assert {dict(k)["datname"] for k in values(only_second, "pg_stat_user_tables_size_bytes")} == {DB2}
    without_second = collect(server, exclude_databases=re.compile(f"^{DB2}$"))
    assert DB2 not in {dict(k)["datname"] for k in values(without_second, "pg_stat_user_tables_size_bytes")}


def test_missing_index_suspects(server: PostgresServer) -> None:
    families = collect(server)
    scores = {dict(k)["relname"]: v for k, v in values(families, "pg_table_missing_index_suspect_score").items()
              if dict(k)["datname"] == DB}
    seq_scan, _, _, idx_tup_fetch, live, _, _ = stats(server, DB)["big"]
    assert idx_tup_fetch == 0 and seq_scan >= MIN_SEQ_SCANS
    assert scores["big"] == pytest.approx(1 + math.log10(live / 1000))  # read only sequentially: 1.7
    assert scores["big"] >= 1
    assert "tiny" not in scores  # under 1,000 rows: never a suspect
    assert scores.get("indexed", 0.0) < 1  # read by key


class ExclusiveLock:
    """``LOCK TABLE`` held (or queued) by another session until the block ends."""

    def __init__(self, server: PostgresServer, table: str) -> None:
        self.conn = psycopg.connect(server.dsn(DB))
        self.table = table

    def __enter__(self) -> psycopg.Connection:
        self.conn.execute(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def test_a_table_locked_by_ddl_is_skipped_not_waited_for(server: PostgresServer) -> None:
    with ExclusiveLock(server, "big"):
        families = collect(server, top_n=1000)  # completes while the lock is still held
    names = {dict(k)["relname"] for k in values(families, "pg_stat_user_tables_size_bytes")}
    assert "big" not in names
    # had it queued for big, lock_timeout would have failed the whole database's query
    assert {"indexed", "tiny", "dead"} <= names


def test_a_table_with_a_queued_exclusive_lock_is_skipped(server: PostgresServer) -> None:
    """ALTER TABLE waiting behind a reader: queueing an AccessShareLock behind it would wait too."""
    reader = psycopg.connect(server.dsn(DB))
    reader.execute("SELECT 1 FROM tiny LIMIT 1")  # holds AccessShareLock until rollback
    waiter = psycopg.connect(server.dsn(DB))
    thread = threading.Thread(target=lambda: waiter.execute("LOCK TABLE tiny IN ACCESS EXCLUSIVE MODE"),
                              daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.query("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                        "AND mode = 'AccessExclusiveLock'")[0][0] == 1, 10, "the lock to queue")
        families = collect(server, top_n=1000)
    finally:
        reader.rollback()
        thread.join(10)
        reader.close()
        waiter.close()
    # this database's tables only: the shared server holds other tests' databases (one has a "tiny" too)
    names = {dict(k)["relname"] for k in values(families, "pg_stat_user_tables_size_bytes") if dict(k)["datname"] == DB}
    assert "tiny" not in names and "big" in names


# -- canned rows: the score ------------------------------------------------------------------
def row(live: int, seq_scan: int, seq_tup_read: int, idx_tup_fetch: int) -> dict[str, int]:
    return {"n_live_tup": live, "seq_scan": seq_scan, "seq_tup_read": seq_tup_read, "idx_tup_fetch": idx_tup_fetch}


def test_score_grows_with_size_and_sequential_share() -> None:
    assert suspect_score(row(999, 1000, 999_000, 0)) == 0  # small tables are fine scanned
    assert suspect_score(row(1_000_000, MIN_SEQ_SCANS - 1, 9_000_000, 0)) == 0  # a dump, not a pattern
    assert suspect_score(row(1000, 50, 50_000, 0)) == pytest.approx(1.0)
    assert suspect_score(row(1_000_000, 50, 1_000_000, 3_000_000)) == pytest.approx(1.0)  # a quarter, 4x weight
    assert suspect_score(row(1_000_000, 50, 50_000_000, 0)) == pytest.approx(4.0)
    assert suspect_score(row(10_000, 50, 10, 1_000_000)) < 0.01  # read by index


# -- canned rows: the `other` rollup's counters ----------------------------------------------
def table(relname: str, seq_scan: float, size: float, datname: str = DB) -> dict[str, object]:
    return {"datname": datname, "schemaname": "public", "relname": relname, "seq_scan": seq_scan,
            "seq_tup_read": 10 * seq_scan, "idx_scan": 0, "size_bytes": size}


def other_seq_scans(other: OtherCounters, rows: list[dict[str, object]], top_n: int) -> float | None:
    top, rest = split_top(rows, top_n, key=lambda r: float(r["size_bytes"]))  # type: ignore[arg-type]
    return other.update(rows, rest).get(DB, [None])[0]


def test_other_counters_stay_monotonic_while_tables_move_in_and_out_of_the_top() -> None:
    other = OtherCounters()
    # first poll: `other` is the sum of the tables past the top 1
    assert other_seq_scans(other, [table("a", 1000, 30), table("b", 5, 20), table("c", 7, 10)], 1) == 12
    # b grows past a: a (1,000 scans) joins `other`, b (5 scans) leaves it; only increases count
    assert other_seq_scans(other, [table("a", 1001, 30), table("b", 6, 40), table("c", 9, 10)], 1) == 15
    # b shrinks back: its lifetime count does not come back in at once
    assert other_seq_scans(other, [table("a", 1001, 30), table("b", 8, 20), table("c", 9, 10)], 1) == 17
    # c's statistics were reset: all of its new count is an increase
    assert other_seq_scans(other, [table("a", 1001, 30), table("b", 8, 20), table("c", 3, 10)], 1) == 20
    # a new table counts from its second poll on; a dropped one takes nothing away
    assert other_seq_scans(other, [table("a", 1001, 30), table("b", 8, 20), table("d", 50, 1)], 1) == 20
    assert other_seq_scans(other, [table("a", 1001, 30), table("b", 8, 20), table("d", 52, 1)], 1) == 22


def test_the_rollup_counter_never_goes_down_on_a_real_server(server: PostgresServer) -> None:
    """The largest table, read by 199 index scans, is pushed out of the top 1 by a new bigger table:
    `other` does not jump by its lifetime count (nor drop when it comes back)."""
    collector = TablesCollector()
    other = {"datname": DB, "schemaname": "pg_other", "relname": "other"}
    options = PostgresOptions(top_n=1, include_databases=re.compile(f"^{DB}$"))
    with monitor_source(server, options) as source:
        first = collector.collect(source)
        top = [dict(k)["relname"] for k in values(first, "pg_stat_user_tables_idx_scan") if dict(k)["relname"] != "other"]
        assert top == ["indexed"] and stats(server, DB)["indexed"][2] >= 199
        seed(server, DB, "CREATE TABLE bigger (id int); INSERT INTO bigger SELECT generate_series(1, 100000)")
        try:
            second = collector.collect(source)
        finally:
            seed(server, DB, "DROP TABLE bigger")
        third = collector.collect(source)
    scans = [value(f, "pg_stat_user_tables_idx_scan", **other) for f in (first, second, third)]
    assert scans[0] is not None and scans[0] == scans[1] == scans[2]
