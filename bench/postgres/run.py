"""Side-by-side benchmark: stackwatch's PostgreSQL exporter vs Debian's prometheus-postgres-exporter.

One run, one PostgreSQL (started like the test fixture) holding ``--tables`` tables (default
2,000, with primary keys, some secondary indexes, a few large ones) and ``--statements``
distinct statements (default 3,000) in pg_stat_statements, a light background load, and both
exporters pointed at the same database, each as its own ``pg_monitor`` role:

1. scrape latency of ``/metrics`` (interleaved, a new HTTP connection per scrape, text format):
   p50/p95 and the ratio stackwatch / peer;
2. series per scrape (samples in the text format), all and ``pg_*`` only;
3. database time of each exporter's own queries (``total_exec_time + total_plan_time`` in
   pg_stat_statements for its role) per minute, with 1 and with ``--scrapers`` concurrent
   scrapers each scraping every ``--scrape-interval`` seconds over ``--window`` seconds;
4. resident memory (VmRSS, the highest seen and the kernel's VmHWM) of both processes.

The peer uses the example ``queries.yaml`` from its docs folder with the pg_stat_statements
columns renamed for PostgreSQL 13+ (``total_time`` -> ``total_exec_time`` ...; without that the
query fails on every scrape and the peer exports no statements at all). stackwatch runs with its
defaults except ``--interval-slow`` (``--slow-interval``, default 60 s instead of 300 s, so every
cost window holds a slow poll: its cost figure is an overestimate of the default's).

Run from the repository root:  python bench/postgres/run.py  [--tables N] [--statements N] ...
Needs PostgreSQL 15 server binaries and prometheus-postgres-exporter
(apt-get install postgresql-15 prometheus-postgres-exporter). Prints Markdown, writes JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fixtures.postgres import DEFAULT_BINDIR, PostgresServer
from tests.fixtures.procs import free_port, require_binary, wait_until

PEER_QUERIES = Path("/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml")
DB = "bench"
ROLES = {"stackwatch": "bench_stackwatch", "peer": "bench_peer"}
PASSWORD = "bench-secret"

#: families of the contract that the PostgreSQL exporter must still report (docs/metrics.md)
SIGNALS = (
    "pg_up", "pg_stat_activity_count", "pg_connections_saturation_ratio", "pg_settings_max_connections",
    "pg_stat_database_blks_hit", "pg_stat_database_cache_hit_ratio", "pg_database_size_bytes",
    "pg_stat_statements_instance_seconds_total", "pg_stat_statements_calls_total",
    "pg_stat_statements_seconds_total", "pg_stat_statements_slow_statements", "pg_stat_statements_query_info",
    "pg_stat_user_tables_seq_scan", "pg_stat_user_tables_size_bytes", "pg_table_missing_index_suspect_score",
    "pg_indexes_unused", "pg_index_unused_size_bytes", "pg_locks_count", "pg_replication_is_replica",
    "pg_stat_bgwriter_checkpoints_timed_total",
)


# -- the database ------------------------------------------------------------------------------
def table_name(i: int) -> str:
    return f"t_{i:05d}"


def seed(server: PostgresServer, tables: int, statements: int) -> dict[str, int]:
    """Tables with primary keys (every 10th with a secondary index, every 100th large and scanned
    sequentially: a missing-index suspect) and ``statements`` distinct statements run a few times
    each; returns what the server holds."""
    server.create_database(DB)
    for role in ROLES.values():
        server.query(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
    with server.connect(DB) as conn:
        for start in range(0, tables, 100):  # one transaction per 100 tables: bounded lock table use
            with conn.transaction():
                for i in range(start, min(tables, start + 100)):
                    rows = 20_000 if i % 100 == 0 else 50
                    conn.execute(f"CREATE TABLE {table_name(i)} (id int PRIMARY KEY, v int, note text)")
                    conn.execute(f"INSERT INTO {table_name(i)} SELECT g, g % 97, 'n' || g "
                                 f"FROM generate_series(1, {rows}) g")
                    if i % 10 == 5:
                        conn.execute(f"CREATE INDEX ON {table_name(i)} (v)")
        for sql in statement_set(tables, statements):
            for _ in range(2):
                conn.execute(sql, (random.randint(1, 50),))
        for i in range(0, tables, 100):
            for _ in range(12):
                conn.execute(f"SELECT count(*) FROM {table_name(i)} WHERE v = %s", (random.randint(1, 50),))
    conn_count = server.query("SELECT count(*) FROM pg_stat_user_tables", dbname=DB)[0][0]
    distinct = server.query("SELECT count(DISTINCT (userid, dbid, queryid)) FROM pg_stat_statements")[0][0]
    return {"tables": int(conn_count), "distinct_statements": int(distinct)}


def statement_set(tables: int, statements: int) -> list[str]:
    """``statements`` distinct statement shapes over the tables (each takes one parameter)."""
    shapes = ("SELECT v FROM {t} WHERE id = %s",
              "SELECT count(*) FROM {t} WHERE v > %s",
              "SELECT note FROM {t} WHERE v = %s ORDER BY id LIMIT 5")
    return [shapes[(n // tables) % len(shapes)].format(t=table_name(n % tables)) for n in range(statements)]


class Load(threading.Thread):
    """A light application load (~``rate`` statements/s) so counters move during the run."""

    def __init__(self, server: PostgresServer, sqls: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self.server, self.sqls, self.rate = server, sqls, rate
        self.stop = threading.Event()

    def run(self) -> None:
        with self.server.connect(DB) as conn:
            while not self.stop.wait(1 / self.rate):
                conn.execute(random.choice(self.sqls), (random.randint(1, 50),))


def db_seconds(server: PostgresServer) -> dict[str, float]:
    """Execution + planning seconds of each exporter role's statements so far."""
    rows = server.query(
        "SELECT r.rolname, coalesce(sum(s.total_exec_time + s.total_plan_time), 0) / 1000 "
        "FROM pg_roles r LEFT JOIN pg_stat_statements s ON s.userid = r.oid "
        "WHERE r.rolname = ANY(%s) GROUP BY r.rolname", (list(ROLES.values()),))
    by_role = {name: float(seconds) for name, seconds in rows}
    return {kind: by_role[role] for kind, role in ROLES.items()}


# -- the exporters ---------------------------------------------------------------------------
class Process:
    """An exporter process and its /metrics URL; samples its RSS in the background."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.url = name, f"http://127.0.0.1:{port}/metrics"
        self.log = log.open("wb")
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)
        self.max_rss = 0

    def status(self, field: str) -> int:
        """A ``kB`` field of /proc/<pid>/status, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def sample_rss(self) -> None:
        self.max_rss = max(self.max_rss, self.status("VmRSS"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def peer_queries(workdir: Path) -> Path:
    """The peer's example queries.yaml with pg_stat_statements' PostgreSQL 13 column names."""
    text = PEER_QUERIES.read_text() if PEER_QUERIES.exists() else gzip.decompress(
        PEER_QUERIES.with_suffix(".yaml.gz").read_bytes()).decode()
    text = re.sub(r"\b(total|min|max|mean|stddev)_time\b(?= /)", r"\1_exec_time", text)
    path = workdir / "queries.yaml"
    path.write_text(text)
    return path


def dsn(server: PostgresServer, role: str, extra: str = "") -> str:
    return f"postgresql://{role}:{PASSWORD}@127.0.0.1:{server.port}/{DB}{extra}"


def start_exporters(server: PostgresServer, workdir: Path, slow_interval: float) -> dict[str, Process]:
    peer_bin = require_binary("prometheus-postgres-exporter", "prometheus-postgres-exporter")
    sw_port, peer_port = free_port(), free_port()
    stackwatch = Process("stackwatch", [
        sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{sw_port}",
        "--interval-slow", str(slow_interval), "--log-level", "warning",
    ], {"STACKWATCH_POSTGRES_DSN": dsn(server, ROLES["stackwatch"])}, sw_port, workdir / "stackwatch.log")
    peer = Process("peer", [
        peer_bin, f"--web.listen-address=127.0.0.1:{peer_port}", f"--extend.query-path={peer_queries(workdir)}",
        "--log.level=warn",
    ], {"DATA_SOURCE_NAME": dsn(server, ROLES["peer"], "?sslmode=disable")}, peer_port, workdir / "peer.log")
    exporters = {"stackwatch": stackwatch, "peer": peer}
    ready = stackwatch.url.replace("/metrics", "/-/ready")
    wait_until(lambda: urllib.request.urlopen(ready, timeout=5).status == 200, 120, "stackwatch's first poll")
    wait_until(lambda: b"pg_up 1" in urllib.request.urlopen(peer.url, timeout=30).read(), 60, "the peer to be up")
    return exporters


def scrape(url: str) -> tuple[float, str]:
    """Seconds for one full GET (new connection, text format) and the body."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, body.decode()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# -- the measurements ------------------------------------------------------------------------
def latency(exporters: dict[str, Process], scrapes: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in exporters}
    for i in range(scrapes):
        for name in (list(exporters) if i % 2 else list(reversed(exporters))):  # interleaved, alternating
            times[name].append(scrape(exporters[name].url)[0])
    return {name: {"p50_seconds": percentile(t, 50), "p95_seconds": percentile(t, 95), "scrapes": len(t)}
            for name, t in times.items()}


def series(body: str) -> dict[str, int]:
    samples = [line for line in body.splitlines() if line and not line.startswith("#")]
    return {"all": len(samples), "pg": sum(1 for s in samples if s.startswith("pg_")),
            "pg_stat_statements": sum(1 for s in samples if s.startswith("pg_stat_statements"))}


def heaviest(server: PostgresServer, role: str, limit: int = 6) -> list[dict[str, Any]]:
    """The role's statements that cost the most database time over the whole run: what dominates."""
    rows = server.query(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), sum(calls), "
        "sum(total_exec_time + total_plan_time) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
        "WHERE r.rolname = %s GROUP BY 1 ORDER BY 3 DESC LIMIT %s", (role, limit))
    return [{"query": q, "calls": int(c), "total_ms": round(float(t), 1)} for q, c, t in rows]


def missing_signals(body: str) -> list[str]:
    names = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in body.splitlines() if line and not line.startswith("#")}
    return [s for s in SIGNALS if s not in names]


def cost(server: PostgresServer, exporters: dict[str, Process], scrapers: int, window: float,
         interval: float) -> dict[str, Any]:
    """Database seconds per minute of each exporter while ``scrapers`` scrape both every ``interval``."""
    stop = threading.Event()
    counts = {name: 0 for name in exporters}
    lock = threading.Lock()

    def scraper(offset: float) -> None:
        next_at = time.monotonic() + offset
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            for name, process in exporters.items():
                scrape(process.url)
                with lock:
                    counts[name] += 1
            next_at += interval

    before = db_seconds(server)
    started = time.monotonic()
    threads = [threading.Thread(target=scraper, args=(i * interval / scrapers,), daemon=True) for i in range(scrapers)]
    for t in threads:
        t.start()
    time.sleep(window)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - started
    after = db_seconds(server)
    return {name: {"db_seconds_per_minute": (after[name] - before[name]) * 60 / elapsed, "scrapes": counts[name]}
            for name in exporters}


def every(seconds: float, action: Callable[[], None], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--statements", type=int, default=3000)
    parser.add_argument("--scrapes", type=int, default=50, help="sequential scrapes of each for latency")
    parser.add_argument("--scrapers", type=int, default=4, help="concurrent scrapers in the second cost window")
    parser.add_argument("--window", type=float, default=120.0, help="seconds of each cost window")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--slow-interval", type=float, default=60.0, help="stackwatch --interval-slow")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "postgres.json")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="stackwatch-bench-pg-"))
    server = PostgresServer(DEFAULT_BINDIR, {"max_connections": 200, "pg_stat_statements.max": 20000,
                                             "pg_stat_statements.track_planning": "on"})
    exporters: dict[str, Process] = {}
    stop = threading.Event()
    load: Load | None = None
    try:
        t0 = time.monotonic()
        seeded = seed(server, args.tables, args.statements)
        print(f"seeded {seeded} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        load = Load(server, statement_set(args.tables, args.statements), rate=20)
        load.start()
        exporters = start_exporters(server, workdir, args.slow_interval)
        every(0.5, lambda: [p.sample_rss() for p in exporters.values()], stop)
        results: dict[str, Any] = {
            "seeded": seeded,
            "latency": latency(exporters, args.scrapes),
            "cost_1_scraper": cost(server, exporters, 1, args.window, args.scrape_interval),
            f"cost_{args.scrapers}_scrapers": cost(server, exporters, args.scrapers, args.window,
                                                   args.scrape_interval),
        }
        bodies = {name: scrape(p.url)[1] for name, p in exporters.items()}  # after several polls: windows filled
        results["series"] = {name: series(body) for name, body in bodies.items()}
        results["stackwatch_missing_signals"] = missing_signals(bodies["stackwatch"])
        results["heaviest_queries"] = {kind: heaviest(server, role) for kind, role in ROLES.items()}
        results["rss_bytes"] = {name: {"max_seen": p.max_rss, "hwm": p.status("VmHWM")}
                                for name, p in exporters.items()}
        results["settings"] = {k: v for k, v in vars(args).items() if k != "output"}
        results["ratios"] = ratios(results, args.scrapers)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown(results, args.scrapers))
    finally:
        stop.set()
        if load is not None:
            load.stop.set()
            load.join(5)
        for process in exporters.values():
            process.stop()
        server.destroy()
    return 0


def ratios(r: dict[str, Any], scrapers: int) -> dict[str, float]:
    many = r[f"cost_{scrapers}_scrapers"]
    one = r["cost_1_scraper"]
    return {
        "latency_p50 (target <= 0.25)": r["latency"]["stackwatch"]["p50_seconds"] / r["latency"]["peer"]["p50_seconds"],
        "series (target <= 0.05)": r["series"]["stackwatch"]["all"] / r["series"]["peer"]["all"],
        "rss_max (target <= 1)": r["rss_bytes"]["stackwatch"]["max_seen"] / r["rss_bytes"]["peer"]["max_seen"],
        f"stackwatch cost {scrapers} vs 1 scraper (target ~1)":
            many["stackwatch"]["db_seconds_per_minute"] / one["stackwatch"]["db_seconds_per_minute"],
        f"peer cost {scrapers} vs 1 scraper":
            many["peer"]["db_seconds_per_minute"] / one["peer"]["db_seconds_per_minute"],
        "cost 1 scraper stackwatch / peer":
            one["stackwatch"]["db_seconds_per_minute"] / one["peer"]["db_seconds_per_minute"],
    }


def markdown(r: dict[str, Any], scrapers: int) -> str:
    many = f"cost_{scrapers}_scrapers"
    rows = [
        "| measure | stackwatch | peer |", "|---|---|---|",
        *(f"| scrape latency {q} | {r['latency']['stackwatch'][q + '_seconds'] * 1000:.1f} ms | "
          f"{r['latency']['peer'][q + '_seconds'] * 1000:.1f} ms |" for q in ("p50", "p95")),
        *(f"| series per scrape, {label} | {r['series']['stackwatch'][key]} | {r['series']['peer'][key]} |"
          for key, label in (("all", "all"), ("pg", "pg_*"), ("pg_stat_statements", "pg_stat_statements*"))),
        (f"| RSS, highest seen (VmHWM) | {r['rss_bytes']['stackwatch']['max_seen'] / 2**20:.1f} MiB "
         f"({r['rss_bytes']['stackwatch']['hwm'] / 2**20:.1f}) | {r['rss_bytes']['peer']['max_seen'] / 2**20:.1f} MiB "
         f"({r['rss_bytes']['peer']['hwm'] / 2**20:.1f}) |"),
        *(f"| database time per minute, {label} | {r[key]['stackwatch']['db_seconds_per_minute'] * 1000:.0f} ms | "
          f"{r[key]['peer']['db_seconds_per_minute'] * 1000:.0f} ms |"
          for key, label in (("cost_1_scraper", "1 scraper"), (many, f"{scrapers} scrapers"))),
        "", "| ratio | value |", "|---|---|",
        *(f"| {name} | {value:.3f} |" for name, value in r["ratios"].items()),
        "", f"seeded: {r['seeded']}; stackwatch signals missing: {r['stackwatch_missing_signals'] or 'none'}",
        *(f"\n{kind}'s heaviest queries over the run:\n" + "\n".join(
            f"- {q['total_ms']:.0f} ms in {q['calls']} calls: `{q['query']}`" for q in queries)
          for kind, queries in r["heaviest_queries"].items()),
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
