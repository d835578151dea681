"""Sizing figures for docs/scale-out.md, measured on the real exporter and instrumentation.

    python bench/sizing.py [--seconds 30]

Starts a PostgreSQL (30 tables with indexes, 200 distinct statements) and a Redis (1,000 keys)
on loopback, runs ``stackwatch exporter`` against them at its default intervals and counts the
series of each target on /metrics; then runs it against 1 and against 4 targets of each kind and
reads its resident memory and CPU time over ``--seconds``; finally instruments a FastAPI app
and counts the series one route adds. Prints one JSON object. Runs about a minute and a half.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.exporter import ExporterProcess  # noqa: E402
from tests.fixtures.postgres import DEFAULT_BINDIR, MONITOR_USER, PostgresServer  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

TABLES, STATEMENTS, KEYS = 30, 200, 1000


def _plant(pg: PostgresServer, redis: RedisServer, databases: list[str]) -> None:
    for db in databases:
        pg.create_database(db)
        with pg.connect(db) as conn:
            for t in range(TABLES):
                conn.execute(f"CREATE TABLE IF NOT EXISTS t{t} (id serial PRIMARY KEY, k int, v text)")
                conn.execute(f"CREATE INDEX IF NOT EXISTS t{t}_k ON t{t} (k)")
                conn.execute(f"INSERT INTO t{t} (k, v) SELECT g, 'x' FROM generate_series(1, 100) g")
            for s in range(STATEMENTS):
                conn.execute(f"SELECT count(*) FROM t{s % TABLES} WHERE k > {s} AND v <> 'q{s}'")
    client = redis.client()
    for db in range(4):
        client.execute_command("SELECT", db)
        client.mset({f"key:{db}:{i}": "v" for i in range(KEYS)})


def _series_by_server(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            counts[sample.labels.get("server", "(exporter itself)")] += 1
    return counts


def _cost(args: list[str], seconds: float) -> dict[str, float]:
    """Resident memory and CPU per minute of an exporter with ``args``, after its first polls."""
    exporter = ExporterProcess(*args)
    try:
        pid = exporter.process.pid
        ticks = 100.0  # os.sysconf("SC_CLK_TCK") on Linux

        def cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        time.sleep(2)
        start_cpu, start = cpu(), time.monotonic()
        while time.monotonic() - start < seconds:
            httpx.get(f"http://{exporter.address}/metrics", timeout=5)  # as Prometheus does, every 15 s
            time.sleep(15)
        used = cpu() - start_cpu
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return {"rss_mib": round(rss / 1024, 1), "cpu_seconds_per_minute": round(used * 60 / seconds, 3)}
    finally:
        exporter.stop()


def _service_series() -> dict[str, int]:
    """Series an instrumented FastAPI service exports: fixed, and per route and status answered."""
    from fastapi.testclient import TestClient

    from stackwatch.instrumentation import instrument
    from tests.instrumentation.apps import make_app

    def count(paths: list[str]) -> int:
        registry = CollectorRegistry()
        app = make_app()
        instrument(app, registry=registry)
        with TestClient(app, raise_server_exceptions=False) as client:
            for path in paths:
                client.get(path)
        return sum(len(f.samples) for f in registry.collect())

    none = count([])
    one = count(["/items/1"])
    two_routes = count(["/items/1", "/sync/a"])
    with_error = count(["/items/1", "/boom"])
    return {"fixed": none, "first_route": one - none, "per_route_and_status": two_routes - one,
            "per_5xx_route": with_error - one}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="window of the memory/CPU reading")
    options = parser.parse_args()
    pg, redis = PostgresServer(DEFAULT_BINDIR), RedisServer()
    try:
        databases = ["app0", "app1", "app2", "app3"]
        _plant(pg, redis, databases)
        one = ["--postgres-dsn", pg.dsn("app0", user=MONITOR_USER), "--redis-url", redis.url]
        exporter = ExporterProcess(*one, "--interval-slow", "3")
        try:
            time.sleep(5)  # a slow-tier poll: tables, indexes, statements
            counts = _series_by_server(httpx.get(f"http://{exporter.address}/metrics", timeout=10).text)
        finally:
            exporter.stop()
        four: list[str] = []
        for i, db in enumerate(databases):
            four += ["--postgres-dsn", pg.dsn(db, user=MONITOR_USER),
                     "--redis-url", redis.url.rsplit("/", 1)[0] + f"/{i}"]
        result: dict[str, Any] = {
            "series": dict(counts),
            "planted": {"tables": TABLES, "statements": STATEMENTS, "redis_keys": KEYS},
            "one_target_each": _cost(one, options.seconds),
            "four_targets_each": _cost(four, options.seconds),
            "instrumented_service": _service_series(),
        }
    finally:
        redis.stop()
        pg.destroy()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
