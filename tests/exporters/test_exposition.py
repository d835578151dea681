"""Hostile statement texts survive /metrics: real statements with newlines, quotes, backslashes,
10 KB of SQL, non-ASCII and passwords go through pg_stat_statements, the statements collector and
the exporter's HTTP server, and both formats parse with client_python's parsers and promtool."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from stackwatch.core.postgres.query_text import normalize_query
from stackwatch.core.postgres.source import PostgresOptions
from stackwatch.exporters.collector import Collector, Intervals, Tier
from stackwatch.exporters.families import gauge
from stackwatch.exporters.postgres.statements import StatementsCollector
from stackwatch.exporters.postgres.target import PostgresTarget
from stackwatch.exporters.server import Exporter, ExporterHTTPServer
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import require_binary

DB = "sw_exposition"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
SECRET = "hunter2-exposition-secret"
#: name -> (statement, a marker that survives normalization and finds it in pg_stat_statements)
HOSTILE = {
    "newlines, quotes, backslashes": (('SELECT 1 AS "multi\nline",\n  2 AS "dq""uote", 3 AS "back\\slash"'
                                       " /* it's \"quoted\" \\ and \\n\n */"), 'dq""uote'),
    "10 KB": ("SELECT " + ",\n ".join(f"{i} AS column_number_{i}" for i in range(450)), "column_number_449"),
    "non-ASCII": ('SELECT 1 AS "café", 2 AS "日本語" /* 🚀 ünïcödé */', "日本語"),
}


def prepare(server: PostgresServer) -> None:
    server.create_database(DB)
    if not server.query("SELECT 1 FROM pg_roles WHERE rolname = 'sw_exposition_role'"):
        server.query("CREATE ROLE sw_exposition_role")


class Serving:
    """One PostgreSQL target behind the exporter's HTTP server on a free loopback port."""

    def __init__(self, target: PostgresTarget) -> None:
        self.http = ExporterHTTPServer(("127.0.0.1", 0), Exporter([target], {}))
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/metrics"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def get(self, accept: str | None = None) -> str:
        response = httpx.get(self.url, headers={"Accept": accept} if accept else {}, timeout=10)
        response.raise_for_status()
        return response.text


@pytest.fixture
def serving(postgres: PostgresServer) -> Iterator[tuple[Serving, Serving]]:
    """Two exporters over the same server: texts up to 16 KiB, and the default 512-byte cap."""
    prepare(postgres)
    polls = Intervals(fast=0.01, slow=0.01, rare=0.01)
    targets = [PostgresTarget(f"t{i}", postgres.monitor_dsn, [StatementsCollector()], polls,
                              PostgresOptions(query_text_max_bytes=size, statements_top_n=1000))
               for i, size in enumerate((16384, 512))]
    for target in targets:
        target.refresh()  # the baseline poll: the next window holds only what runs below
    with postgres.connect(DB) as conn:
        for sql, _ in HOSTILE.values():
            conn.execute(sql)
        conn.execute(f"ALTER ROLE sw_exposition_role PASSWORD '{SECRET}'")
    time.sleep(0.02)
    for target in targets:
        target.refresh()
    full, capped = Serving(targets[0]), Serving(targets[1])
    yield full, capped
    for s, target in ((full, targets[0]), (capped, targets[1])):
        s.http.shutdown()
        s.http.server_close()
        target.close()


def stored_texts(server: PostgresServer) -> dict[str, str]:
    """What pg_stat_statements holds for each hostile statement (normalized by the server)."""
    rows = server.query("SELECT query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                        "WHERE d.datname = %s", (DB,))
    out = {}
    for name, (_, marker) in HOSTILE.items():
        matching = {r[0] for r in rows if marker in r[0]}
        assert len(matching) == 1, (name, matching)
        out[name] = matching.pop()
    return out


def query_labels(families: Iterator[Metric]) -> set[str]:
    return {s.labels["query"] for f in families for s in f.samples if s.name == "pg_stat_statements_query_info"}


def test_hostile_texts_parse_in_both_formats(serving: tuple[Serving, Serving], postgres: PostgresServer) -> None:
    full, _ = serving
    expected = {name: normalize_query(text, 16384) for name, text in stored_texts(postgres).items()}
    assert len(expected["10 KB"].encode()) > 10_000
    assert "日本語" in expected["non-ASCII"] and '"dq""uote"' in expected["newlines, quotes, backslashes"]
    text, openmetrics = full.get(), full.get(OPENMETRICS)
    for body, parse in ((text, parse_text), (openmetrics, parse_openmetrics)):
        queries = query_labels(parse(body))
        for name, query in expected.items():
            assert query in queries, name
    assert openmetrics.rstrip().endswith("# EOF")


def test_texts_are_capped_on_a_character_boundary(serving: tuple[Serving, Serving], postgres: PostgresServer) -> None:
    _, capped = serving
    for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS)):
        queries = query_labels(parse(capped.get(accept)))
        assert queries and all(len(q.encode()) <= 512 for q in queries)
        assert any(q.startswith("SELECT $1 AS column_number_0") and q.endswith("...") for q in queries)


def test_passwords_in_utility_statements_never_reach_the_exposition(serving: tuple[Serving, Serving]) -> None:
    full, _ = serving
    body = full.get()
    assert "ALTER ROLE sw_exposition_role PASSWORD" in body
    assert SECRET not in body and SECRET not in full.get(OPENMETRICS)


def test_promtool_accepts_the_text_format(serving: tuple[Serving, Serving]) -> None:
    promtool = require_binary("promtool", "prometheus")
    for s in serving:
        result = subprocess.run([promtool, "check", "metrics"], input=s.get(), capture_output=True, text=True,
                                timeout=60, check=False)
        # exit 1 is a parse error; 3 would only be lint advice (e.g. postgres_exporter's untyped counters)
        assert result.returncode in (0, 3), result.stdout + result.stderr
        assert "error while linting" not in result.stdout + result.stderr


class _RawLabel(Collector[object]):
    """A label with a raw newline, quote and backslash: what the encoders must escape."""

    name = "raw"
    tier = Tier.FAST

    def collect(self, source: object) -> list[Metric]:
        family = gauge("raw_label", "escaping check", ["v"])
        family.add_metric(['line1\nline2 "q" back\\slash é'], 1)
        return [family]


def test_raw_newlines_quotes_and_backslashes_round_trip(postgres: PostgresServer) -> None:
    target = PostgresTarget("raw", postgres.monitor_dsn, [_RawLabel()], Intervals(), PostgresOptions())  # type: ignore[list-item]
    target.refresh()
    serving = Serving(target)
    try:
        for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS)):
            found = [s.labels["v"] for f in parse(serving.get(accept)) for s in f.samples if s.name == "raw_label"]
            assert found == ['line1\nline2 "q" back\\slash é']
    finally:
        serving.http.shutdown()
        serving.http.server_close()
        target.close()
