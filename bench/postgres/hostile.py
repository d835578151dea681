"""Scrape latency under hostile load: a huge statement text and a thousand databases being polled.

One PostgreSQL (started like the test fixture) with ``--databases`` databases (default 1,000,
each with a table) and, in pg_stat_statements, one statement whose text is ``--statement-kb``
KiB (default 100: ``SELECT pg_sleep(..) /* aaaa... */`` run by a role without any privilege, as
any database user can). stackwatch's exporter polls it as a ``pg_monitor`` role with a short
slow interval, so the slow tier (tables and indexes of every database, statement texts) is
polling during the whole window, while a scraper GETs ``/metrics`` every ``--scrape-every``
seconds. Reported: the worst, p99 and p50 scrape latency, the longest slow-tier poll, and the
oldest fast-tier snapshot (``pg_scrape_collector_snapshot_age_seconds{collector="activity"}``)
seen during the window: a slow tier that held up the scrape path or the fast tier shows here.

Run from the repository root:  python bench/postgres/hostile.py  [--databases N] [--statement-kb N]
Needs PostgreSQL 15 server binaries. Prints Markdown, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from run import ROOT, Process, percentile, scrape  # bench/postgres/run.py, next to this file

from tests.fixtures.postgres import DEFAULT_BINDIR, PostgresServer
from tests.fixtures.procs import free_port, wait_until

ROLE, PASSWORD = "bench_stackwatch", "bench-secret"
PLAIN = "bench_plain"
SCRAPE_TIMEOUT = 60.0  # what run.scrape waits for


def seed(server: PostgresServer, databases: int, statement_kb: int) -> float:
    """The databases, the exporter's role and the huge statement; returns the seconds it took."""
    started = time.monotonic()
    server.query(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
    server.query(f"CREATE ROLE {PLAIN} LOGIN PASSWORD '{PASSWORD}'")
    strategy = " STRATEGY = FILE_COPY" if server.version >= 150000 else ""
    with server.connect() as conn:
        for i in range(databases):
            conn.execute(f"CREATE DATABASE h_{i:04d}{strategy}")
    for i in range(0, databases, max(1, databases // 20)):  # a table in some: the tables query has rows
        server.query("CREATE TABLE t (id int PRIMARY KEY, v text)", dbname=f"h_{i:04d}")
    comment = "a" * (statement_kb * 1024)
    with server.connect() as conn:
        conn.execute(f"SET ROLE {PLAIN}")
        conn.execute(f"SELECT pg_sleep(0.3) /* {comment} */")
    return time.monotonic() - started


def accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def self_metrics(body: str) -> dict[tuple[str, str], float]:
    """``(family, collector) -> value`` of the per-collector self-metrics in a scrape (one parse)."""
    return {(s.name, s.labels["collector"]): s.value for f in text_string_to_metric_families(body)
            for s in f.samples if s.name.startswith("pg_scrape_collector_") and "collector" in s.labels}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", type=int, default=1000)
    parser.add_argument("--statement-kb", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured window")
    parser.add_argument("--scrape-every", type=float, default=0.25)
    parser.add_argument("--slow-interval", type=float, default=5.0, help="stackwatch --interval-slow")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "hostile.json")
    args = parser.parse_args(argv)

    server = PostgresServer(DEFAULT_BINDIR, {"max_connections": 50})
    workdir = Path(tempfile.mkdtemp(prefix="stackwatch-bench-hostile-"))
    exporter: Process | None = None
    try:
        seed_seconds = seed(server, args.databases, args.statement_kb)
        port = free_port()
        exporter = Process("stackwatch", [
            sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{port}",
            "--interval-fast", "1", "--interval-slow", str(args.slow_interval), "--log-level", "warning",
        ], {"STACKWATCH_POSTGRES_DSN": f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{server.port}/postgres"},
            port, workdir / "stackwatch.log")
        # the window starts as soon as the port accepts, before the first slow poll (the heaviest)
        wait_until(lambda: accepts(port), 60, "the exporter's port")
        latencies: list[float] = []
        fast_ages: list[float] = []
        slow_polls: list[float] = []
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                seconds, body = scrape(exporter.url)
            except OSError as error:  # a scrape that timed out (60 s) is the worst case
                print(f"scrape failed: {error}", file=sys.stderr)
                latencies.append(SCRAPE_TIMEOUT)
                continue
            latencies.append(seconds)
            own = self_metrics(body)
            if ("pg_scrape_collector_snapshot_age_seconds", "activity") in own:
                fast_ages.append(own["pg_scrape_collector_snapshot_age_seconds", "activity"])
            if ("pg_scrape_collector_duration_seconds", "tables") in own:
                slow_polls.append(own["pg_scrape_collector_duration_seconds", "tables"])
            exporter.sample_rss()
            time.sleep(args.scrape_every)
        result: dict[str, Any] = {
            "databases": args.databases, "statement_kb": args.statement_kb, "seed_seconds": round(seed_seconds, 1),
            "window_seconds": args.seconds, "scrapes": len(latencies),
            "scrape_worst_seconds": max(latencies), "scrape_p99_seconds": percentile(latencies, 99),
            "scrape_p50_seconds": percentile(latencies, 50),
            "slow_tier_tables_poll_max_seconds": max(slow_polls, default=None),
            "fast_tier_snapshot_age_max_seconds": max(fast_ages, default=None),
            "exporter_max_rss_mib": round(exporter.max_rss / 2**20, 1),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=ROOT).stdout.strip(),
        }
    finally:
        if exporter is not None:
            exporter.stop()
        server.destroy()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {result['databases']} databases, {result['statement_kb']} KiB statement | "
          f"worst {result['scrape_worst_seconds'] * 1000:.1f} ms | p99 {result['scrape_p99_seconds'] * 1000:.1f} ms | "
          f"p50 {result['scrape_p50_seconds'] * 1000:.1f} ms | slow poll (tables) "
          f"{result['slow_tier_tables_poll_max_seconds']} s | oldest fast snapshot "
          f"{result['fast_tier_snapshot_age_max_seconds']} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
