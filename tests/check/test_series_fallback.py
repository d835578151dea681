"""``stackwatch check --prometheus-url`` alone: the PostgreSQL, Redis and health items the exporter
(or the instrumentation) already measures are judged from their series, both ways.

Two setups, each a real stackwatch exporter watching real PostgreSQL and Redis, a stand-in
service endpoint with ``health_check_status``, and a real Prometheus scraping them: one with
planted problems (missing index, unused/duplicate/invalid indexes, nearly full connections, no
slow-query log, a server without pg_stat_statements, slow statements, a Redis without maxmemory,
TTLs or hits, a failing health check), one clean.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from stackwatch.check.postgres_series import PostgresSeriesCheck
from stackwatch.check.runner import Budget
from stackwatch.promql import statement_mean_seconds
from stackwatch.thresholds import POSTGRES, SLOW_TIER_WINDOW
from tests.check.conftest import Outcome, run_check
from tests.check.test_postgres import seed_healthy, seed_problems
from tests.fixtures.exporter import ExporterProcess
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import PrometheusServer
from tests.fixtures.redis import RedisServer

#: item -> what the planted setup gives (the clean one passes them all)
JUDGED = {
    "pg.missing_indexes": "fail", "pg.unused_indexes": "warn", "pg.duplicate_indexes": "warn",
    "pg.invalid_indexes": "fail", "pg.connections": "fail", "pg.idle_connections": "pass",
    "pg.slow_query_log": "fail", "pg.pg_stat_statements": "fail", "pg.slow_statements": "fail",
    "redis.hit_rate": "fail", "redis.keys_without_ttl": "fail", "redis.maxmemory": "fail", "app.health": "fail",
}
NEEDS_THE_SYSTEM = {"pg.connections_per_app": "--postgres-dsn", "pg.plans": "--postgres-dsn",
                    "pg.connection_churn": "--postgres-dsn", "redis.dangerous_commands": "--redis-url",
                    "pg.unbounded_queries": "--postgres-dsn", "app.metrics": "--app-url"}


@dataclass
class Setup:
    prometheus: PrometheusServer
    outcome: Outcome


class _Service:
    """A service's /metrics with one health check and its status."""

    def __init__(self, healthy: bool) -> None:
        registry = CollectorRegistry()
        Gauge("health_check_status", "1 passed, 0 failed.", ["check"], registry=registry) \
            .labels("database").set(int(healthy))
        self.port = free_port()
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=registry)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _traffic(redis: RedisServer, hit_share: float, stop: threading.Event) -> None:
    """500 GETs a second, ``hit_share`` of them on a key that exists: a rate over the rules' 5m
    window from a minute of data still clears the 1 lookup/s guard."""
    client = redis.client()
    hits = round(100 * hit_share)
    while not stop.wait(0.2):
        pipe = client.pipeline(transaction=False)
        for i in range(100):
            pipe.get("user:1" if i < hits else f"absent:{i}")
        pipe.execute()


def _has(prometheus: PrometheusServer, expr: str) -> bool:
    return bool(prometheus.query(expr))


def _setup(planted: bool, postgres_factory: Any) -> Iterator[Setup]:
    held: list[psycopg.Connection] = []
    stop = threading.Event()
    if planted:
        main = postgres_factory()
        seed_problems(main, "shop")
        # no pg_stat_statements, and nearly out of connections (9 usable)
        bare = postgres_factory(shared_preload_libraries="''", max_connections="12",
                                superuser_reserved_connections="3")
        dsns = [main.monitor_dsn, bare.monitor_dsn]
        redis = RedisServer()
        redis.client().mset({f"user:{i}": "x" for i in range(200)})  # no TTL, no maxmemory
    else:
        main = postgres_factory(log_min_duration_statement="200")
        seed_healthy(main, "shop")
        dsns = [main.monitor_dsn]
        redis = RedisServer(maxmemory="64mb", maxmemory_policy="allkeys-lru")
        for i in range(200):
            redis.client().set(f"user:{i}", "x", ex=3600)
    threading.Thread(target=_traffic, args=(redis, 0.1 if planted else 1.0, stop), daemon=True).start()
    service = _Service(healthy=not planted)
    exporter = ExporterProcess(*[a for dsn in dsns for a in ("--postgres-dsn", dsn)], "--redis-url", redis.url,
                                "--interval-fast", "1", "--interval-slow", "1")
    if planted:
        held = [psycopg.connect(main.dsn("shop"))]
        held[0].execute("SELECT 1")  # a transaction left idle
        held += [psycopg.connect(bare.dsn()) for _ in range(8)]  # with the exporter's: all 9 usable slots
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "stackwatch-exporter", "static_configs": [{"targets": [exporter.address]}]},
        {"job_name": "demo", "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}]}
    try:
        with PrometheusServer(config) as prometheus:
            for expr in ("count_over_time(pg_stat_statements_entries[1m]) >= 2",
                         "count_over_time(redis_ttl_keys_sampled[1m]) >= 2",
                         "count_over_time(redis_keyspace_misses_total[1m]) >= 3",
                         "count_over_time(pg_connections_saturation_ratio[1m]) >= 2",
                         "count_over_time(health_check_status[1m]) >= 2"):
                wait_until(lambda expr=expr: _has(prometheus, expr), 60, expr)
            # a statement called while Prometheus watches: once to be exported, then as often as a
            # statement must be called in the window to be judged
            with main.connect("shop") as conn:
                conn.execute("SELECT pg_sleep(%s)", (0.3 if planted else 0.001,))
                wait_until(lambda: _has(prometheus, 'pg_stat_statements_query_info{query=~".*pg_sleep.*"}'), 60,
                           "the pg_sleep statement exported")
                for _ in range(POSTGRES.slow_statement_min_calls):
                    conn.execute("SELECT pg_sleep(%s)", (0.3 if planted else 0.001,))
            slowest = f"max({statement_mean_seconds(SLOW_TIER_WINDOW)}) > {0.25 if planted else 0}"
            wait_until(lambda: _has(prometheus, slowest), 60, slowest)
            wait_until(lambda: _has(prometheus, "pg_connections_used >= 9") or not planted, 60, "the held connections")
            yield Setup(prometheus, run_check("--format", "json", "--prometheus-url", prometheus.url))
    finally:
        stop.set()
        for conn in held:
            conn.close()
        service.close()
        exporter.stop()
        redis.destroy()


@pytest.fixture(scope="module")
def planted(postgres_factory: Any) -> Iterator[Setup]:
    yield from _setup(True, postgres_factory)


@pytest.fixture(scope="module")
def clean(postgres_factory: Any) -> Iterator[Setup]:
    yield from _setup(False, postgres_factory)


@pytest.mark.parametrize("item", sorted(JUDGED))
def test_series_give_real_verdicts_both_ways(planted: Setup, clean: Setup, item: str) -> None:
    for setup, expected in ((planted, JUDGED[item]), (clean, "pass")):
        finding = setup.outcome.finding(item)
        assert finding["status"] == expected, (setup is planted, finding["evidence"])
        assert "in Prometheus" in finding["evidence"] and "; no --" in finding["evidence"], finding


def test_what_the_series_cannot_answer_names_the_flag(planted: Setup) -> None:
    for item, flag in NEEDS_THE_SYSTEM.items():
        finding = planted.outcome.finding(item)
        assert finding["status"] == "unknown" and flag in finding["fix"], finding


def test_evidence_names_the_servers_and_objects(planted: Setup) -> None:
    def evidence(item: str) -> str:
        return str(planted.outcome.finding(item)["evidence"])

    assert "shop public.orders" in evidence("pg.missing_indexes")
    assert "orders_total" in evidence("pg.unused_indexes")
    assert "orders_status_b" in evidence("pg.duplicate_indexes")
    assert "emails_email" in evidence("pg.invalid_indexes")
    assert "pg_sleep" in evidence("pg.slow_statements")
    assert "not in shared_preload_libraries" in evidence("pg.pg_stat_statements")
    assert "database in demo" in evidence("app.health")
    assert planted.outcome.code == 1 and planted.outcome.report["errors"] == []


def test_idle_in_transaction_is_judged_from_the_exporters_age(planted: Setup, clean: Setup) -> None:
    """The planted session has been idle in transaction since before Prometheus started: flagged
    once the threshold is below its age (60 s by default would make this test a minute long)."""
    strict = dataclasses.replace(POSTGRES, idle_in_transaction_seconds=1.0)
    for setup, expected in ((planted, "fail"), (clean, "pass")):
        findings = PostgresSeriesCheck(setup.prometheus.url, strict).run(Budget(30, 5))
        idle = next(f for f in findings if f.item.id == "pg.idle_connections")
        assert idle.status.value == expected, idle

