"""The check, the alert and the dashboards judge statements alike, on the exporter's series.

A real ``stackwatch exporter`` polls a real PostgreSQL every second and a real Prometheus
scrapes it. pg.slow_statements judges recent behaviour when Prometheus is given: a statement
that was slow before the window (its cumulative mean still over the cut-off) fails the check
without Prometheus and passes with it; a statement slow inside the window fails it. Rows an
UPDATE changes are not unbounded reads, for the check and the Checklist dashboard alike.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackwatch.thresholds import POSTGRES
from tests.check.conftest import run_check
from tests.e2e.stack import Subprocess, _http_ok
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import REPO_ROOT, PrometheusServer

DB = "check_windowed"
HISTORY = "SELECT pg_sleep(%s)::text AS history"
RECENT = "SELECT pg_sleep(%s), now() AS recent"
SLOW_NOW = "SELECT pg_sleep(%s), clock_timestamp() AS slow_now"


def _run(server: PostgresServer, statement: str, seconds: float, times: int) -> None:
    with server.connect(DB) as conn:
        for _ in range(times):
            conn.execute(statement, (seconds,))


def _run_in_window(server: PostgresServer, prom: PrometheusServer, statement: str, value: float,
                   times: int, text: str) -> None:
    """Call ``statement`` until Prometheus holds its series (the exporter exports statements
    active in its window), then ``times`` more: calls Prometheus sees as an increase. ``text``:
    a regex of its normalized text."""
    with server.connect(DB) as conn:
        def seen() -> bool:
            conn.execute(statement, (value,))
            return _has(prom, f'pg_stat_statements_query_info{{query=~"{text}"}}')
        wait_until(seen, 60, f"the series of `{statement}` in Prometheus", interval=0.3)
        for _ in range(times):
            conn.execute(statement, (value,))


@pytest.fixture(scope="module")
def prometheus(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    postgres.create_database(DB)
    postgres.query("CREATE TABLE IF NOT EXISTS counters (n int)", dbname=DB)
    postgres.query("INSERT INTO counters SELECT g FROM generate_series(1, 5000) g", dbname=DB)
    _run(postgres, HISTORY, 0.26, POSTGRES.slow_statement_min_calls)  # slow, but before the window
    port = free_port()
    exporter = Subprocess("exporter", [
        sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{port}",
        "--postgres-dsn", postgres.dsn(DB, user="stackwatch_monitor"),
        "--interval-fast", "5", "--interval-slow", "1", "--interval-rare", "60",
    ], {}, Path(tmp_path_factory.mktemp("exporter")))
    try:
        wait_until(lambda: exporter.alive() and _http_ok(f"http://127.0.0.1:{port}/-/ready"), 60, "the exporter")
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": "stackwatch-exporter",
                                      "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}
        with PrometheusServer(config) as prom:
            yield prom
    finally:
        exporter.stop()


def _said(finding: dict[str, str]) -> str:
    """The finding's status and whole evidence (pytest shortens a dict's repr past its first keys)."""
    return f"{finding['status']}: {finding['evidence']}"


def _has(prom: PrometheusServer, expr: str) -> bool:
    return bool(prom.query(expr))


def test_slow_before_the_window_passes_with_prometheus_and_fails_without(
        postgres: PostgresServer, prometheus: PrometheusServer) -> None:
    _run_in_window(postgres, prometheus, RECENT, 0.0, 2 * POSTGRES.slow_statement_min_calls, ".* AS recent")
    wait_until(lambda: _has(prometheus, f'increase(pg_stat_statements_calls_total{{datname="{DB}", '
                                        f'command="select"}}[15m]) >= {POSTGRES.slow_statement_min_calls}'),
               60, "the recent calls in Prometheus")
    without = run_check("--format", "json", "--postgres-dsn", postgres.dsn(DB)).finding("pg.slow_statements")
    assert without["status"] == "fail" and "AS history" in without["evidence"], _said(without)
    windowed = run_check("--format", "json", "--postgres-dsn", postgres.dsn(DB), "--prometheus-url",
                         prometheus.url).finding("pg.slow_statements")
    assert windowed["status"] == "pass", _said(windowed)
    assert "over the last 15m" in windowed["evidence"] and "AS recent" in windowed["evidence"]


def test_slow_inside_the_window_fails_with_prometheus(postgres: PostgresServer, prometheus: PrometheusServer) -> None:
    _run_in_window(postgres, prometheus, SLOW_NOW, 0.26, 2 * POSTGRES.slow_statement_min_calls,
                   ".* AS slow_now")
    wait_until(lambda: _has(prometheus, f'increase(pg_stat_statements_calls_total{{datname="{DB}", '
                                        f'command="select"}}[15m]) >= {POSTGRES.slow_statement_min_calls} and '
                                        f'rate(pg_stat_statements_seconds_total[15m]) / '
                                        f'rate(pg_stat_statements_calls_total[15m]) > 0.25'),
               60, "the slow calls in Prometheus")
    windowed = run_check("--format", "json", "--postgres-dsn", postgres.dsn(DB), "--prometheus-url",
                         prometheus.url).finding("pg.slow_statements")
    assert windowed["status"] == "fail", _said(windowed)
    assert "over the last 15m" in windowed["evidence"] and "AS slow_now" in windowed["evidence"]
    assert "AS history" not in windowed["evidence"]  # no call in the window


def _panel_expr(title: str) -> str:
    """The Checklist panel's PromQL as Grafana sends it with every job and instance selected."""
    board = json.loads((REPO_ROOT / "dashboards" / "json" / "stackwatch-checklist.json").read_text())
    panels = [p for row in board["panels"] for p in [row, *row.get("panels", [])]]
    expr = next(p for p in panels if p.get("title") == title)["targets"][0]["expr"]
    return str(expr).replace("$job", ".*").replace("$instance", ".*").replace("$cluster", ".*")


def test_rows_an_update_changes_are_not_unbounded_reads(postgres: PostgresServer, prometheus: PrometheusServer) -> None:
    """The Checklist's "Unbounded queries" panel and pg.unbounded_queries agree on a clean database
    whose only big statement is an UPDATE of 5000 rows."""
    _run_in_window(postgres, prometheus, "UPDATE counters SET n = n + 1 WHERE n > %s", 0, 2, "UPDATE counters .*")
    expr = _panel_expr("Unbounded queries")
    wait_until(lambda: _has(prometheus, 'rate(pg_stat_statements_rows_total{command="update"}[15m]) / '
                                        'rate(pg_stat_statements_calls_total{command="update"}[15m]) >= 5000'),
               60, "the UPDATE's rows per call in Prometheus")
    panel = prometheus.query(expr)
    value = float(panel[0]["value"][1]) if panel else math.nan
    assert math.isnan(value) or value <= POSTGRES.rows_per_call, (expr, panel)  # NaN: the stat's "no data"
    finding = run_check("--format", "json", "--postgres-dsn", postgres.dsn(DB)).finding("pg.unbounded_queries")
    assert finding["status"] == "pass", finding
