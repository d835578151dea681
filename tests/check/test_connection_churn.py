"""``pg.connection_churn`` against real servers of every tested major: a client that connects per
query is flagged, a pooled one (one connection, many transactions) passes, and PostgreSQL 13,
which counts no sessions, is ``unknown`` without an error."""

from __future__ import annotations

import dataclasses

from stackwatch.check.model import Status
from stackwatch.check.postgres_churn import churn_finding
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.thresholds import POSTGRES
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

#: judged from 10 sessions, so the test opens few connections (the ratio is what is under test)
FEW = dataclasses.replace(POSTGRES, churn_min_sessions=10)


def _fresh(server: PostgresServer, name: str) -> None:
    """A new database whose statistics start now (a new one counts from the server's start)."""
    server.query(f"DROP DATABASE IF EXISTS {name}")
    server.query(f"CREATE DATABASE {name}")
    server.query("SELECT pg_stat_reset()", dbname=name)


def _judge(server: PostgresServer, dbname: str) -> tuple[Status, str]:
    with server.connect(dbname) as conn:
        source = PostgresSource(conn, server.dsn(dbname), conn.info.server_version, PostgresOptions())
        finding = churn_finding(source, FEW)
    return finding.status, finding.evidence


def _sessions(server: PostgresServer, dbname: str) -> int:
    rows = server.query("SELECT sessions FROM pg_stat_database WHERE datname = %s", (dbname,))
    return int(rows[0][0] or 0)


def test_connecting_per_query_fails_and_a_pool_passes(postgres_any_version: PostgresServer) -> None:
    server = postgres_any_version
    _fresh(server, "churn_per_query")
    _fresh(server, "churn_pooled")
    per_query = FEW.churn_min_sessions + 2
    for _ in range(per_query):  # what a handler that connects for each request does
        with server.connect("churn_per_query") as conn:
            conn.execute("SELECT 1").fetchall()
    for _ in range(per_query):  # as many sessions, each serving 20 requests (workers of a pool)
        with server.connect("churn_pooled") as conn:
            for _ in range(20):
                conn.execute("SELECT 1").fetchall()
    bad, bad_evidence = _judge(server, "churn_per_query")
    if server.version < 140000:
        assert bad is Status.UNKNOWN and "PostgreSQL 13" in bad_evidence, bad_evidence
        assert _judge(server, "churn_pooled")[0] is Status.UNKNOWN
        return
    for name in ("churn_per_query", "churn_pooled"):
        wait_until(lambda name=name: _sessions(server, name) >= per_query, 20, "the sessions to be counted")
    bad, bad_evidence = _judge(server, "churn_per_query")
    assert bad is Status.FAIL and "sessions per transaction" in bad_evidence, bad_evidence
    good, good_evidence = _judge(server, "churn_pooled")
    assert good is Status.PASS and "sessions per transaction" in good_evidence, good_evidence


def test_a_quiet_database_polled_by_monitoring_is_not_churn(postgres: PostgresServer) -> None:
    """Fewer than one new session a second since the reset: a monitor's short-lived connections."""
    _fresh(postgres, "churn_quiet")
    for _ in range(FEW.churn_min_sessions + 2):
        with postgres.connect("churn_quiet") as conn:
            conn.execute("SELECT 1").fetchall()
    wait_until(lambda: _sessions(postgres, "churn_quiet") > FEW.churn_min_sessions, 20, "the sessions")
    with postgres.connect("churn_quiet") as conn:
        source = PostgresSource(conn, postgres.dsn("churn_quiet"), conn.info.server_version, PostgresOptions())
        slow = dataclasses.replace(FEW, min_new_sessions_per_second=1000.0)  # as if spread over a day
        finding = churn_finding(source, slow)
    assert finding.status is Status.PASS and "new sessions/s: under 1000/s" in finding.evidence, finding
