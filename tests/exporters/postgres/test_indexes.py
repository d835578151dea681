"""The indexes collector against real unused, invalid and duplicate indexes, and its grouping."""

from __future__ import annotations

import re

import psycopg
import pytest

from stackwatch.core.postgres.indexes import classify
from stackwatch.exporters.postgres.indexes import IndexesCollector
from tests.exporters.postgres.collect import collector, value, values
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB, DB2 = "sw_indexes", "sw_indexes_clean"
ONLY_OURS = re.compile(f"^({DB}|{DB2})$")


@pytest.fixture(scope="module")
def server(postgres_any_version: PostgresServer) -> PostgresServer:
    """In ``sw_indexes``: orders with a primary key (used), a unique constraint and a plain index
    (never scanned), a second plain index and an expression index each duplicated, a partial index
    that is not a duplicate, and ``dup`` whose unique CREATE INDEX CONCURRENTLY failed (invalid).
    ``sw_indexes_clean`` has nothing wrong."""
    server = postgres_any_version
    for db in (DB, DB2):
        server.create_database(db)
    with server.connect(DB) as conn:
        conn.execute("""
            DROP TABLE IF EXISTS orders, dup;
            CREATE TABLE orders (id int PRIMARY KEY, code text UNIQUE, customer int, note text);
            INSERT INTO orders SELECT g, 'c' || g, g % 50, repeat('x', g % 20) FROM generate_series(1, 3000) g;
            CREATE INDEX orders_customer ON orders (customer);
            CREATE INDEX orders_customer_again ON orders (customer);
            CREATE INDEX orders_lower_note ON orders (lower(note));
            CREATE INDEX orders_lower_note_again ON orders (lower(note));
            CREATE INDEX orders_customer_partial ON orders (customer) WHERE customer > 10;
            CREATE TABLE dup (v int);
            INSERT INTO dup VALUES (1), (1);
        """)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_v ON dup (v)")
        for i in range(1, 20):
            conn.execute("SELECT note FROM orders WHERE id = %s", (i,))
    with server.connect(DB2) as conn:
        conn.execute("DROP TABLE IF EXISTS fine; CREATE TABLE fine (id int PRIMARY KEY)")
    wait_until(lambda: server.query("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'orders_pkey'",
                                    dbname=DB)[0][0] >= 19, 30, "index statistics to be flushed")
    return server


collect = collector(IndexesCollector, include_databases=ONLY_OURS)


def size(server: PostgresServer, index: str) -> int:
    return int(server.query("SELECT pg_relation_size(%s::regclass)", (index,), dbname=DB)[0][0])


def names(families: list, family: str) -> set[str]:
    return {dict(k)["indexrelname"] for k in values(families, family)}


def test_unused_invalid_and_duplicate_indexes_with_their_sizes(server: PostgresServer) -> None:
    families = collect(server)
    # never scanned and enforcing nothing; the primary key is used, the unique constraint enforces
    assert names(families, "pg_index_unused_size_bytes") == {
        "orders_customer", "orders_customer_again", "orders_lower_note", "orders_lower_note_again",
        "orders_customer_partial"}
    assert names(families, "pg_index_invalid_size_bytes") == {"dup_v"}
    # the newer of each identical pair; the partial index differs by its predicate
    assert names(families, "pg_index_duplicate_size_bytes") == {"orders_customer_again", "orders_lower_note_again"}
    labels = {"datname": DB, "schemaname": "public", "relname": "orders", "indexrelname": "orders_customer_again"}
    assert value(families, "pg_index_duplicate_size_bytes", **labels) == size(server, "orders_customer_again")
    assert value(families, "pg_index_unused_size_bytes", **labels) == size(server, "orders_customer_again")
    assert value(families, "pg_index_invalid_size_bytes", datname=DB, schemaname="public", relname="dup",
                 indexrelname="dup_v") == size(server, "dup_v")
    assert value(families, "pg_indexes_unused", datname=DB) == 5
    assert value(families, "pg_indexes_invalid", datname=DB) == 1
    assert value(families, "pg_indexes_duplicate", datname=DB) == 2
    for kind in ("unused", "invalid", "duplicate"):  # every database read gets a count, zero included
        assert value(families, f"pg_indexes_{kind}", datname=DB2) == 0


def test_per_index_series_are_bounded_counts_stay_complete(server: PostgresServer) -> None:
    families = collect(server, top_n=1)
    assert len(values(families, "pg_index_unused_size_bytes")) == 1
    assert len(values(families, "pg_index_duplicate_size_bytes")) == 1
    assert value(families, "pg_indexes_unused", datname=DB) == 5


def test_indexes_of_a_table_locked_by_ddl_are_skipped(server: PostgresServer) -> None:
    with psycopg.connect(server.dsn(DB)) as locker:
        locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        families = collect(server)
        locker.rollback()
    assert names(families, "pg_index_unused_size_bytes") == set()
    assert names(families, "pg_index_invalid_size_bytes") == {"dup_v"}


# -- canned rows: grouping ---------------------------------------------------------------
def index(name: str, signature: str = "s", oid: int = 1, *, scans: int = 0, valid: bool = True,
          unique: bool = False, primary: bool = False, constraint: bool = False) -> dict[str, object]:
    return {"datname": "d", "schemaname": "s", "relname": "t", "indexrelname": name, "indexrelid": oid,
            "size_bytes": 8192, "indisvalid": valid, "indisprimary": primary, "indisunique": unique,
            "backs_constraint": constraint, "idx_scan": scans, "signature": signature}


def test_the_index_kept_of_a_duplicate_group_is_the_one_that_enforces() -> None:
    found = classify([index("plain", oid=1, scans=5), index("pkey", oid=2, primary=True, unique=True,
                                                                constraint=True), index("uniq", oid=3, unique=True)])
    assert [r["indexrelname"] for r in found["duplicate"]] == ["uniq", "plain"]
    assert found["unused"] == []  # scanned or enforcing


def test_invalid_indexes_are_neither_unused_nor_duplicates() -> None:
    found = classify([index("ok", oid=1, scans=1), index("broken", oid=2, valid=False)])
    assert [r["indexrelname"] for r in found["invalid"]] == ["broken"]
    assert found["duplicate"] == [] and found["unused"] == []
