"""pg.plans and pg.missing_indexes advice on real servers: planted problems and a clean twin,
on every PostgreSQL version of the matrix.

The planted database has the advice traps: an unbounded query on a 4-value ``status`` column (a
B-tree would not be used: the fix is LIMIT), ``name LIKE $1`` (a B-tree cannot serve it; a
trigram GIN index can) and a foreign key without an index (every delete of a customer scans the
tickets). Both databases also hold what cannot or must not be planned: the exporter's own
statements (``extract($1 FROM ...)`` cannot be PREPAREd), a typed literal (``interval $2``) and an
application statement that does not PREPARE either.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from stackwatch.check import index_advice
from stackwatch.core.postgres import connection
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.exporters.postgres.activity import ActivityCollector
from stackwatch.exporters.postgres.replication import ReplicationCollector
from tests.check.conftest import Outcome, run_check
from tests.fixtures.postgres import PostgresServer

CALLS = 6


def _seed(server: PostgresServer, dbname: str, clean: bool) -> None:
    server.create_database(dbname)
    with server.connect(dbname) as conn:
        conn.execute("CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO customers (name) SELECT 'customer ' || g || ' ' || md5(g::text) "
                     "FROM generate_series(1, 50000) g")
        conn.execute("CREATE TABLE tickets (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES "
                     "customers, status text NOT NULL)")
        conn.execute("INSERT INTO tickets (customer_id, status) SELECT 1 + g % 50000, "
                     "(ARRAY['new', 'open', 'pending', 'closed'])[1 + g % 4] FROM generate_series(1, 100000) g")
        if clean:
            conn.execute("CREATE EXTENSION pg_trgm")
            conn.execute("CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops)")
            conn.execute("CREATE INDEX tickets_customer ON tickets (customer_id)")
        conn.execute("INSERT INTO customers (name) SELECT 'gone ' || g FROM generate_series(1, 30) g")
        conn.execute("ANALYZE")
        by_status = "SELECT id, customer_id FROM tickets WHERE status = %s" + (" ORDER BY id LIMIT 20" if clean else "")
        for i in range(CALLS):
            conn.execute(by_status, ("open",)).fetchall()
            conn.execute("SELECT id, name FROM customers WHERE name LIKE %s", (f"%{i}abc%",)).fetchall()
            conn.execute("SELECT id, status FROM tickets WHERE id = %s AND now() - interval '2 seconds' < now()",
                         (i,)).fetchall()
            conn.execute("SELECT extract(epoch FROM now()) AS seconds").fetchall()  # "extract($1 FROM ...)"
        for (customer,) in conn.execute("SELECT id FROM customers WHERE name LIKE 'gone %'").fetchall():
            conn.execute("DELETE FROM customers WHERE id = %s", (customer,))
    _exporter_polls(server, dbname)


def _exporter_polls(server: PostgresServer, dbname: str) -> None:
    """The exporter's own statements land in this database's pg_stat_statements, as in production."""
    dsn = server.dsn(dbname, user="stackwatch_monitor")
    options = PostgresOptions()
    conn = connection.connect(dsn, options.connection)
    try:
        source = PostgresSource(conn, dsn, conn.info.server_version, options)
        for _ in range(CALLS):
            ReplicationCollector().collect(source)
            ActivityCollector().collect(source)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def planted(postgres_any_version: PostgresServer) -> Outcome:
    _seed(postgres_any_version, "plans_planted", clean=False)
    return run_check("--format", "json", "--postgres-dsn", postgres_any_version.dsn("plans_planted"),
                     "--db-cores", "1")


@pytest.fixture(scope="module")
def clean(postgres_any_version: PostgresServer) -> Outcome:
    _seed(postgres_any_version, "plans_clean", clean=True)
    return run_check("--format", "json", "--postgres-dsn", postgres_any_version.dsn("plans_clean"),
                     "--db-cores", "1")


def test_clean_twin_passes_although_some_statements_cannot_be_planned(clean: Outcome) -> None:
    for item in ("pg.plans", "pg.missing_indexes", "pg.unbounded_queries", "pg.slow_statements"):
        assert clean.status(item) == "pass", clean.finding(item)
    plans = clean.finding("pg.plans")
    assert "1 not plannable" in plans["evidence"] and "extract($1 FROM now())" in plans["evidence"]
    assert "pg_read_all_data" not in plans["evidence"] + plans["fix"]
    # stackwatch's own statements are never planned, nor shown
    assert "pg_is_in_recovery" not in plans["evidence"] and "pg_stat_activity" not in plans["evidence"]


def test_typed_literals_are_planned(postgres_any_version: PostgresServer, clean: Outcome) -> None:
    assert "interval $2" not in clean.finding("pg.plans")["evidence"]  # planned, so not listed as a failure
    with postgres_any_version.connect("plans_clean") as conn:
        plan = index_advice.generic_plan(conn, "SELECT id FROM tickets WHERE id = $1 AND now() - interval $2 < "
                                         "now() AND now() > timestamp with time zone $3", 5000)
    assert plan["Node Type"] in ("Result", "Index Scan"), plan


def test_unbounded_query_on_a_few_valued_column_gets_limit_not_an_index(planted: Outcome) -> None:
    plans = planted.finding("pg.plans")
    assert plans["status"] == "warn", plans
    assert "status has 4 distinct values" in plans["evidence"]
    assert "add LIMIT (keyset pagination)" in plans["fix"] and "WHERE status = $1" in plans["fix"]
    for finding in (plans, planted.finding("pg.missing_indexes")):
        assert "(status)" not in finding["fix"], finding


def test_like_gets_a_trigram_index_never_a_btree(planted: Outcome) -> None:
    trigram = ("CREATE EXTENSION IF NOT EXISTS pg_trgm; "
               "CREATE INDEX CONCURRENTLY ON public.customers USING gin (name gin_trgm_ops);")
    for item in ("pg.plans", "pg.missing_indexes"):
        fix = planted.finding(item)["fix"]
        assert trigram in fix, fix
        assert "public.customers (name)" not in fix


def test_unindexed_foreign_key_gets_its_index(planted: Outcome) -> None:
    finding = planted.finding("pg.missing_indexes")
    assert finding["status"] == "fail"
    assert "foreign key tickets_customer_id_fkey of public.tickets (customer_id) has no index" in finding["evidence"]
    assert "CREATE INDEX CONCURRENTLY ON public.tickets (customer_id);" in finding["fix"]


def test_every_suggested_index_switches_the_plan_and_nothing_is_left_behind(
        postgres_any_version: PostgresServer, planted: Outcome) -> None:
    """Applied for real, the suggestions turn the planted database into its clean twin."""
    postgres = postgres_any_version
    assert not postgres.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'", dbname="plans_planted")
    assert not postgres.query("SELECT indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                              "WHERE c.relname IN ('customers', 'tickets') AND NOT i.indisprimary",
                              dbname="plans_planted")
    fixes = [s.strip() for s in planted.finding("pg.missing_indexes")["fix"].split(";") if s.strip()]
    with psycopg.connect(postgres.dsn("plans_planted"), autocommit=True) as conn:
        for statement in fixes:
            conn.execute(statement)
        conn.execute("ANALYZE")
    again = run_check("--format", "json", "--postgres-dsn", postgres.dsn("plans_planted"))
    plans: dict[str, Any] = again.finding("pg.plans")
    assert "gin_trgm_ops" not in plans["fix"] and "public.tickets (customer_id)" not in plans["fix"], plans
    assert "customers" not in plans["evidence"], plans
