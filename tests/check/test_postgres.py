"""PostgreSQL items against real servers: one seeded with every problem, one healthy.

The problem database has a 100k-row table queried by an unindexed column, an unused 2 MiB index,
two identical indexes, an invalid index left by a failed CREATE UNIQUE INDEX CONCURRENTLY, slow
statements, an unbounded SELECT and no slow-query log; the healthy server logs slow statements and
its table is indexed for the way it is queried. Statement items read only the DSN's database, so
the session-wide server can hold both without the scenarios seeing each other's statements.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stackwatch.check import index_advice
from stackwatch.check.items import POSTGRES_ITEMS
from stackwatch.check.model import Status
from stackwatch.check.postgres import IDLE, PostgresCheck
from stackwatch.check.runner import Budget
from stackwatch.thresholds import POSTGRES
from tests.check.conftest import Outcome, run_check
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

LOOKUP = "SELECT * FROM orders WHERE customer_id = %s"


def _orders(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, "
                 "status text NOT NULL, total numeric NOT NULL)")
    conn.execute("INSERT INTO orders (customer_id, status, total) SELECT g %% 5000, "
                 "CASE WHEN g %% 10 = 0 THEN 'open' ELSE 'done' END, g FROM generate_series(1, %s) g", (rows,))


def seed_problems(server: PostgresServer, dbname: str) -> None:
    server.create_database(dbname)
    with server.connect(dbname) as conn:
        _orders(conn, 100_000)
        conn.execute("CREATE INDEX orders_total ON orders (total)")  # never used, ~2 MiB
        conn.execute("CREATE INDEX orders_status_a ON orders (status)")
        conn.execute("CREATE INDEX orders_status_b ON orders (status)")  # duplicate of _a
        conn.execute("CREATE TABLE emails (email text)")
        conn.execute("INSERT INTO emails VALUES ('a@example.com'), ('a@example.com')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY emails_email ON emails (email)")  # leaves it invalid
        conn.execute("CREATE TABLE audit (n int)")
        conn.execute("CREATE FUNCTION touch(int) RETURNS int LANGUAGE sql AS "
                     "'INSERT INTO audit VALUES ($1) RETURNING $1'")
        conn.execute("ANALYZE")
        for customer in range(12):
            conn.execute(LOOKUP, (customer,)).fetchall()
        conn.execute("SELECT touch(id::int) FROM orders WHERE customer_id = %s", (7,)).fetchall()
        for _ in range(POSTGRES.slow_statement_min_calls):
            conn.execute("SELECT pg_sleep(%s)", (0.26,))
        conn.execute("SELECT id, total FROM orders").fetchall()


def seed_healthy(server: PostgresServer, dbname: str) -> None:
    """Healthy, yet with what only looks slow: a one-off data load of 0.3 s, maintenance, and the
    monitoring role's own slow statement, repeated."""
    server.create_database(dbname)
    with server.connect(dbname) as conn:
        _orders(conn, 20_000)
        conn.execute("INSERT INTO orders (customer_id, status, total) "
                     "SELECT g %% 5000, 'done', g FROM generate_series(1, 100) g, pg_sleep(%s)", (0.3,))
        conn.execute("CREATE INDEX orders_customer ON orders (customer_id)")
        conn.execute("VACUUM ANALYZE orders")
    with psycopg.connect(server.dsn(dbname, user="stackwatch_monitor"), autocommit=True) as monitor:
        for _ in range(POSTGRES.slow_statement_min_calls):
            monitor.execute("SELECT pg_sleep(%s), 'the monitoring role'", (0.26,))
    with server.connect(dbname) as conn:
        for customer in range(12):
            conn.execute(LOOKUP, (customer,)).fetchall()
            conn.execute("SELECT id, total FROM orders WHERE customer_id = %s ORDER BY id LIMIT 20",
                         (customer,)).fetchall()


@pytest.fixture(scope="module")
def problems(postgres: PostgresServer) -> tuple[PostgresServer, Outcome]:
    seed_problems(postgres, "check_problems")
    return postgres, run_check("--format", "json", "--postgres-dsn", postgres.dsn("check_problems"),
                               "--db-cores", "1")


@pytest.fixture(scope="module")
def healthy(postgres_factory: Any) -> tuple[PostgresServer, Outcome]:
    server = postgres_factory(log_min_duration_statement="200")
    seed_healthy(server, "shop")
    return server, run_check("--format", "json", "--postgres-dsn", server.dsn("shop"), "--db-cores", "1")


@pytest.mark.parametrize(("item", "bad"), [
    ("pg.missing_indexes", "fail"),
    ("pg.unused_indexes", "warn"),
    ("pg.duplicate_indexes", "warn"),
    ("pg.invalid_indexes", "fail"),
    ("pg.slow_query_log", "fail"),
    ("pg.slow_statements", "fail"),
    ("pg.plans", "warn"),
    ("pg.unbounded_queries", "warn"),
])
def test_item_flags_the_seeded_problem_and_passes_when_healthy(
        problems: tuple[PostgresServer, Outcome], healthy: tuple[PostgresServer, Outcome], item: str,
        bad: str) -> None:
    assert problems[1].status(item) == bad, problems[1].finding(item)
    assert healthy[1].status(item) == "pass", healthy[1].finding(item)


def test_healthy_database_passes_every_postgres_item(healthy: tuple[PostgresServer, Outcome]) -> None:
    outcome = healthy[1]
    judged = {item.id for item in POSTGRES_ITEMS}  # pg.read_share is Prometheus's (unknown without it)
    statuses = {f["id"]: f["status"] for f in outcome.report["findings"] if f["id"] in judged}
    assert set(statuses.values()) == {"pass"}, outcome.out
    assert outcome.code == 0


def test_evidence_names_the_objects_and_the_space_they_hold(problems: tuple[PostgresServer, Outcome]) -> None:
    outcome = problems[1]
    assert "public.orders_total" in outcome.finding("pg.unused_indexes")["evidence"]
    assert "MiB" in outcome.finding("pg.unused_indexes")["evidence"]
    assert "DROP INDEX CONCURRENTLY public.orders_status_b;" in outcome.finding("pg.duplicate_indexes")["fix"]
    invalid = outcome.finding("pg.invalid_indexes")
    assert "public.emails_email (" in invalid["evidence"] and ", unique)" in invalid["evidence"]
    # REINDEX would fail again on the duplicates that made the CREATE UNIQUE INDEX fail
    assert "REINDEX" not in invalid["fix"] and "DROP INDEX CONCURRENTLY public.emails_email;" in invalid["fix"]
    assert "duplicate rows" in invalid["fix"]
    assert "pg_sleep" in outcome.finding("pg.slow_statements")["evidence"]
    # monitoring statements (the check's own, the exporter's) are not the application's slow queries
    assert "pg_stat_statements" not in outcome.finding("pg.slow_statements")["evidence"]
    assert "current_setting" not in outcome.finding("pg.slow_statements")["evidence"]
    assert "SELECT id, total FROM orders" in outcome.finding("pg.unbounded_queries")["evidence"]
    assert "public.orders" in outcome.finding("pg.missing_indexes")["evidence"]
    assert outcome.code == 1


def test_index_suggestion_turns_the_generic_plan_into_an_index_scan(postgres: PostgresServer) -> None:
    seed_problems(postgres, "check_advice")
    outcome = run_check("--format", "json", "--postgres-dsn", postgres.dsn("check_advice"))
    fix = outcome.finding("pg.plans")["fix"]
    suggestion = "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"
    assert suggestion in fix
    assert suggestion in outcome.finding("pg.missing_indexes")["fix"]
    statement = "SELECT * FROM orders WHERE customer_id = $1"
    with postgres.connect("check_advice") as conn:
        before = index_advice.generic_plan(conn, statement, 5000)
        assert [s.table for s in index_advice.scans_to_index(before)] == ["orders"]
        conn.execute(suggestion)
        after = index_advice.generic_plan(conn, statement, 5000)
    assert after["Node Type"] in ("Index Scan", "Bitmap Heap Scan"), after
    assert not index_advice.scans_to_index(after)
    again = run_check("--format", "json", "--postgres-dsn", postgres.dsn("check_advice"))
    assert "public.orders (customer_id)" not in again.finding("pg.plans")["fix"]


def test_planning_executes_nothing(problems: tuple[PostgresServer, Outcome]) -> None:
    server, outcome = problems
    assert "touch" in outcome.finding("pg.plans")["evidence"]  # the side-effecting SELECT was planned...
    written = server.query("SELECT count(*) FROM audit", dbname="check_problems")[0][0]
    run_check("--format", "json", "--postgres-dsn", server.dsn("check_problems"))
    assert server.query("SELECT count(*) FROM audit", dbname="check_problems")[0][0] == written  # ...not run
    assert not server.query("SELECT name FROM pg_prepared_statements")


def test_generic_plan_refuses_anything_but_a_select(postgres: PostgresServer) -> None:
    with postgres.connect() as conn, pytest.raises(ValueError):
        index_advice.generic_plan(conn, "DELETE FROM pg_temp.x WHERE a = $1", 1000)


def test_least_privilege_monitor_role_reads_the_statistics(problems: tuple[PostgresServer, Outcome]) -> None:
    server = problems[0]
    dsn = server.dsn("check_problems", user="stackwatch_monitor")
    outcome = run_check("--format", "json", "--postgres-dsn", dsn)
    assert outcome.status("pg.unused_indexes") == "warn"
    assert outcome.status("pg.slow_statements") == "fail"
    # pg_monitor may not read the tables: planning says so instead of guessing
    assert outcome.status("pg.plans") in ("unknown", "warn")
    assert "monitor-secret" not in outcome.out + outcome.err


@pytest.fixture(scope="module")
def tiny(postgres_factory: Any) -> Iterator[tuple[PostgresServer, list[psycopg.Connection]]]:
    server = postgres_factory(max_connections=10)  # 7 usable beside the 3 reserved
    conns = [psycopg.connect(server.dsn(), application_name="big-app", autocommit=True) for _ in range(6)]
    yield server, conns
    for conn in conns:
        conn.close()


def test_nearly_full_max_connections_fails_but_an_idle_pool_is_not_too_many_connections(
        tiny: tuple[PostgresServer, list[psycopg.Connection]], healthy: tuple[PostgresServer, Outcome]) -> None:
    outcome = run_check("--format", "json", "--postgres-dsn", tiny[0].dsn(), "--db-cores", "1")
    assert outcome.status("pg.connections") == "fail"
    assert "7 client connections of 7 usable" in outcome.finding("pg.connections")["evidence"]
    per_app = outcome.finding("pg.connections_per_app")  # 6 idle connections run nothing
    assert per_app["status"] == "pass" and "big-app: 6 (0 active)" in per_app["evidence"], per_app
    assert "3 = 1 cores x 2 + 1" in per_app["evidence"]
    assert healthy[1].status("pg.connections") == "pass"
    assert healthy[1].status("pg.connections_per_app") == "pass"


def test_more_statements_running_at_once_than_the_guidance_warns(postgres: PostgresServer) -> None:
    """Four statements running at once on a 1-core server (guidance (1 x 2) + 1 = 3) are too many,
    spread over two applications that each stay under it."""
    busy = [psycopg.connect(postgres.dsn(), application_name=f"busy-{i % 2}", autocommit=True) for i in range(4)]

    def sleep(conn: psycopg.Connection) -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(60)")

    threads = [threading.Thread(target=sleep, args=(conn,)) for conn in busy]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: postgres.query("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                          "AND application_name LIKE 'busy-%%'")[0][0] == 4, 30, "4 active")
        per_app = run_check("--format", "json", "--postgres-dsn", postgres.dsn(), "--db-cores", "1").finding(
            "pg.connections_per_app")
    finally:
        postgres.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'busy-%%'")
        for thread in threads:
            thread.join(10)
        for conn in busy:
            conn.close()
    assert per_app["status"] == "warn", per_app
    assert "busy-0: 2 (2 active)" in per_app["evidence"] and "busy-1: 2 (2 active)" in per_app["evidence"]
    assert per_app["evidence"].startswith("4 active connection(s)")


def test_session_idle_in_transaction_past_the_threshold_fails(postgres: PostgresServer) -> None:
    thresholds = dataclasses.replace(POSTGRES, idle_in_transaction_seconds=0.5)

    def idle_finding() -> Any:
        findings = PostgresCheck(postgres.dsn(), thresholds=thresholds).run(Budget(30, 5))
        return next(f for f in findings if f.item == IDLE)

    assert idle_finding().status == Status.PASS
    with psycopg.connect(postgres.dsn()) as holder:
        holder.execute("SELECT 1")  # opens a transaction and leaves it idle
        time.sleep(1.0)
        finding = idle_finding()
    assert finding.status == Status.FAIL
    assert "idle_in_transaction_session_timeout" in finding.fix


def test_without_pg_stat_statements_statement_items_say_what_is_missing(postgres_factory: Any) -> None:
    server = postgres_factory(shared_preload_libraries="''", log_min_duration_statement="2s")
    outcome = run_check("--format", "json", "--postgres-dsn", server.dsn())
    assert outcome.status("pg.pg_stat_statements") == "fail"
    slow_log = outcome.finding("pg.slow_query_log")  # statements between 0.25 s and 2 s go unlogged
    assert slow_log["status"] == "warn" and "250ms" in slow_log["fix"], slow_log
    for item in ("pg.slow_statements", "pg.plans", "pg.unbounded_queries"):
        assert outcome.status(item) == "unknown"
        assert "shared_preload_libraries" in outcome.finding(item)["fix"]


def test_loaded_but_not_created_pg_stat_statements_is_told_to_create_the_extension(postgres: PostgresServer) -> None:
    postgres.query('CREATE DATABASE "check_no_extension"')  # the library is preloaded on this server
    outcome = run_check("--format", "json", "--postgres-dsn", postgres.dsn("check_no_extension"))
    statements = outcome.finding("pg.pg_stat_statements")
    assert statements["status"] == "warn" and "CREATE EXTENSION pg_stat_statements" in statements["fix"]
    for item in ("pg.pg_stat_statements", "pg.slow_statements", "pg.plans", "pg.unbounded_queries"):
        fix = outcome.finding(item)["fix"]
        assert "CREATE EXTENSION pg_stat_statements" in fix and "shared_preload_libraries" not in fix, (item, fix)


def test_statement_timeout_bounds_every_query(postgres: PostgresServer) -> None:
    """A table locked by DDL cannot hang the check: lock_timeout/statement_timeout end the wait."""
    postgres.create_database("check_locked")
    with postgres.connect("check_locked") as conn:
        conn.execute("CREATE TABLE t (a int)")
    holder = psycopg.connect(postgres.dsn("check_locked"))
    holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    try:
        began = time.monotonic()
        outcome = run_check("--format", "json", "--timeout", "1", "--deadline", "20",
                            "--postgres-dsn", postgres.dsn("check_locked"))
        assert time.monotonic() - began < 20
        assert outcome.code in (0, 1)
    finally:
        holder.close()


def test_a_slow_data_change_fails_the_slow_statements_item(postgres: PostgresServer) -> None:
    """Not only SELECTs: an UPDATE averaging over the cut-off is a slow statement too."""
    postgres.create_database("check_slow_update")
    with postgres.connect("check_slow_update") as conn:
        conn.execute("CREATE TABLE counters (n int)")
        conn.execute("INSERT INTO counters VALUES (1)")
        conn.execute("CREATE FUNCTION slow_bump(int) RETURNS int LANGUAGE plpgsql AS "
                     "'BEGIN PERFORM pg_sleep(0.26); RETURN $1 + 1; END'")
        for _ in range(POSTGRES.slow_statement_min_calls):
            conn.execute("UPDATE counters SET n = slow_bump(n) WHERE n > %s", (0,))
    outcome = run_check("--format", "json", "--postgres-dsn", postgres.dsn("check_slow_update"))
    finding = outcome.finding("pg.slow_statements")
    assert finding["status"] == "fail", finding
    assert "UPDATE counters" in finding["evidence"]
    # utility statements (CREATE FUNCTION, CREATE TABLE) are not the application's queries
    assert "CREATE" not in finding["evidence"]


def test_unreachable_or_refused_database_exits_2_without_the_password(postgres: PostgresServer) -> None:
    wrong = postgres.dsn(password="wrong-secret-pw")
    outcome = run_check("--format", "json", "--postgres-dsn", wrong)
    assert outcome.code == 2
    assert "wrong-secret-pw" not in outcome.out + outcome.err
    assert outcome.report["errors"] and outcome.status("pg.connections") == "unknown"


def test_every_supported_version(postgres_any_version: PostgresServer) -> None:
    """The same seeded problems on each server of the matrix (``STACKWATCH_TEST_PG_BINDIRS``)."""
    server = postgres_any_version
    seed_problems(server, "check_versions")
    outcome = run_check("--format", "json", "--postgres-dsn", server.dsn("check_versions"))
    expected = {"pg.missing_indexes": "fail", "pg.unused_indexes": "warn", "pg.duplicate_indexes": "warn",
                "pg.invalid_indexes": "fail", "pg.connections": "pass", "pg.pg_stat_statements": "pass",
                "pg.slow_statements": "fail", "pg.plans": "warn", "pg.unbounded_queries": "warn"}
    assert {item: outcome.status(item) for item in expected} == expected, outcome.out
    assert "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);" in outcome.finding("pg.plans")["fix"]
    run_check("--format", "json", "--postgres-dsn", server.dsn("check_versions"))
    calls = dict(server.query(
        "SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = 'check_versions' AND s.query = ANY(%s)",
        (["SELECT * FROM orders WHERE customer_id = $1", "SELECT pg_sleep($1)", "SELECT id, total FROM orders"],)))
    # planning them twice added no call (PostgreSQL 13 counts an EXPLAIN as one unless tracking is off)
    assert calls == {"SELECT * FROM orders WHERE customer_id = $1": 12,
                     "SELECT pg_sleep($1)": POSTGRES.slow_statement_min_calls,
                     "SELECT id, total FROM orders": 1}, calls
