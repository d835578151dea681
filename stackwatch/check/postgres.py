"""PostgreSQL items: indexes, connections, slow-query logging, statements and their plans.

Everything runs on one connection to the DSN's database, in ``default_transaction_read_only``
mode, with ``statement_timeout`` clipped to the check's deadline before every item. Statement
items read pg_stat_statements for that database only (its generic plans must be made there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from psycopg.conninfo import make_conninfo

from ..exporters.postgres import indexes, statements, tables
from ..exporters.postgres.query_text import normalize_query
from ..exporters.postgres.connection import ConnectionSettings, InvalidDSN, connect, parse_dsn
from ..exporters.postgres.settings import to_base_unit
from ..exporters.redact import redact, redact_text
from ..thresholds import POSTGRES, PostgresThresholds
from . import index_advice
from .items import (CONNECTIONS, DUPLICATE_INDEXES, IDLE, INVALID_INDEXES, MISSING_INDEXES, PER_APP, PLANS, SLOW,
                    SLOW_LOG, STATEMENTS, UNBOUNDED, UNUSED_INDEXES)
from .items import POSTGRES_ITEMS as ITEMS
from .model import Finding, Item, SourceUnavailable, Status
from .postgres_series import POOLER_FIX, saturation_status, slow_log_finding
from .runner import Budget

__all__ = ["ITEMS", "PostgresCheck", "pool_guidance"]


#: marks this check's own statements in pg_stat_statements
_MARKER = "/* stackwatch check */ "
#: statements reading PostgreSQL's own catalogs, statistics views or settings: monitoring tools'
_MONITORING = re.compile(r'(?i)\b(?:from|join)\s+(?:"?\w+"?\.)?"?pg_\w+|^\s*select\s+current_setting\(|'
                         + re.escape(_MARKER.strip()))
#: what an application runs: queries and data changes (utility statements such as CREATE INDEX,
#: VACUUM or COPY are one-off maintenance, not the checklist's slow queries)
_DML = re.compile(r"(?is)^\s*(?:(?:/\*.*?\*/|--[^\n]*)\s*)*(?:select|insert|update|delete|merge|with|values|table)\b")
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_PGSS_FIX = ("add pg_stat_statements to shared_preload_libraries, restart, then "
             "CREATE EXTENSION pg_stat_statements in this database")


def pool_guidance(dsn: str, cores: int | None, spindles: int) -> tuple[int, str]:
    """The checklist's ``(cores x 2) + spindles`` and where the core count came from.

    PostgreSQL does not report its host's cores over SQL, so they come from ``--db-cores``, else
    from this machine when the DSN points at it (loopback or a Unix socket), else the checklist's
    "typical 20-30 per app instance" ceiling stands in.
    """
    if cores is None:
        host = parse_dsn(dsn).get("host", "")
        if host.startswith("/") or host in _LOCAL_HOSTS:
            cores, origin = os.cpu_count() or 1, "cores of this host, where the DSN points"
        else:
            limit = POSTGRES.pool_connections_per_instance
            return limit, f"{limit} (the checklist's typical ceiling; pass --db-cores for (cores x 2) + spindles)"
    else:
        origin = "--db-cores"
    return cores * 2 + spindles, f"{cores * 2 + spindles} = {cores} cores x 2 + {spindles} spindle(s) ({origin})"


def _gib(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _short(query: str, limit: int = 100) -> str:
    """Whitespace collapsed, passwords redacted, cut to ``limit`` bytes (the exporter's rules)."""
    return normalize_query(query, limit)


@dataclass
class PostgresCheck:
    """The PostgreSQL items for one DSN (``plans``: how many of the slowest SELECTs to explain)."""

    dsn: str
    plans: int = 10
    cores: int | None = None
    spindles: int = 1
    thresholds: PostgresThresholds = POSTGRES
    conn: psycopg.Connection | None = field(default=None, init=False, repr=False)

    # -- plumbing -------------------------------------------------------------------------
    def run(self, budget: Budget) -> Iterator[Finding]:
        self.conn = self._connect(budget)
        try:
            self._budget = budget
            self._classified: dict[str, list[dict[str, Any]]] | None = None
            self._suggestions: list[tuple[str, index_advice.IndexSuggestion]] = []
            self._statement_rows: list[dict[str, Any]] | None = None
            self._pgss = self._statements_available()
            # statistics before plans: PostgreSQL 13 counts an EXPLAINed statement as one more call
            for item, check in ((SLOW, self._slow), (UNBOUNDED, self._unbounded), (PLANS, self._plans),
                                (MISSING_INDEXES, self._missing_indexes), (UNUSED_INDEXES, self._unused),
                                (DUPLICATE_INDEXES, self._duplicates), (INVALID_INDEXES, self._invalid),
                                (CONNECTIONS, self._connections), (IDLE, self._idle), (PER_APP, self._per_app),
                                (SLOW_LOG, self._slow_log), (STATEMENTS, self._statements)):
                yield self._guarded(item, check)
        finally:
            self.conn.close()

    def _connect(self, budget: Budget) -> psycopg.Connection:
        where = redact(self.dsn)
        try:
            params = parse_dsn(self.dsn)
            params.setdefault("application_name", "stackwatch-check")
            dsn = make_conninfo(**params)
            timeout_ms = int(budget.seconds() * 1000)
            conn = connect(dsn, ConnectionSettings(budget.seconds(), timeout_ms, min(timeout_ms, 1000)))
            conn.prepare_threshold = None
            conn.execute("SET default_transaction_read_only = on")
            return conn
        except InvalidDSN as error:
            raise SourceUnavailable(f"--postgres-dsn: {error}") from None
        except psycopg.Error as error:
            raise SourceUnavailable(f"cannot connect to {where}: {_first_line(error)}") from None

    def _guarded(self, item: Item, check: Callable[[], Finding]) -> Finding:
        """Run one item; a timeout or an error makes it ``unknown`` (a lost connection ends the source)."""
        assert self.conn is not None
        try:
            self.conn.execute(f"SET statement_timeout = {int(self._budget.seconds() * 1000)}")
            return check()
        except psycopg.errors.QueryCanceled:
            return item.finding(Status.UNKNOWN, f"query timed out after {self._budget.seconds():.1f}s",
                                "raise --timeout or --deadline")
        except psycopg.Error as error:
            self._raise_if_lost(error)
            return item.finding(Status.UNKNOWN, f"query failed: {_first_line(error)}",
                                "connect as a role with pg_monitor (and SELECT on the tables for plans)")

    def _raise_if_lost(self, error: psycopg.Error) -> None:
        """A broken connection ends the source; any other error (a lock timeout...) ends one item."""
        assert self.conn is not None
        if self.conn.broken or self.conn.closed:
            raise SourceUnavailable(f"lost the connection to {redact(self.dsn)}: {_first_line(error)}") from None

    def _rows(self, query: str | sql.Composed, params: Any = None) -> list[dict[str, Any]]:
        assert self.conn is not None
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL(_MARKER) + (sql.SQL(query) if isinstance(query, str) else query), params)
            return cur.fetchall()

    def _statements_available(self) -> bool:
        """Whether this role can read pg_stat_statements here (found in whatever schema it lives)."""
        try:
            found = self._rows(statements.EXTENSION_SQL)
            if not found:
                return False
            self._pgss_view = sql.Identifier(found[0]["schema"], "pg_stat_statements")
            self._rows(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(self._pgss_view))
            return True
        except psycopg.Error as error:
            self._raise_if_lost(error)
            return False

    # -- indexes --------------------------------------------------------------------------
    def _missing_indexes(self) -> Finding:
        t = self.thresholds
        suspects = sorted(((tables.suspect_score(r), r) for r in self._rows(tables.SQL)),
                          key=lambda pair: -pair[0])
        suspects = [(score, r) for score, r in suspects if score >= t.missing_index_suspect_score]
        if not suspects and not self._suggestions:
            return MISSING_INDEXES.finding(Status.PASS, "no table of >= "
                                           f"{t.missing_index_min_live_rows} rows is read mostly by sequential scans"
                                           + ("" if self._pgss else "; slowest statements not planned: "
                                              "pg_stat_statements unavailable"))
        lines = [f"{r['schemaname']}.{r['relname']}: {r['seq_scan']} seq scans read {r['seq_tup_read']} rows, "
                 f"{r['idx_scan']} index scans, {r['n_live_tup']} live rows (suspect score {score:.1f})"
                 for score, r in suspects[:10]]
        lines += [f"generic plan of `{_short(q, 70)}` scans {sug.schema}.{sug.table} sequentially"
                  for q, sug in self._suggestions]
        fixes = sorted({sug.sql() for _, sug in self._suggestions})
        fix = " ".join(fixes) if fixes else ("find the filtering statements in pg_stat_statements and index "
                                             "their columns (pg.plans does this for the slowest SELECTs)")
        return MISSING_INDEXES.finding(Status.FAIL, "; ".join(lines), fix)

    def _index_rows(self) -> dict[str, list[dict[str, Any]]]:
        if self._classified is None:
            self._classified = indexes.classify(self._rows(indexes.SQL))
        return self._classified

    def _unused(self) -> Finding:
        minimum = self.thresholds.unused_index_min_bytes
        rows = [r for r in self._index_rows()["unused"] if r["size_bytes"] >= minimum]
        rows.sort(key=lambda r: -r["size_bytes"])
        if not rows:
            return UNUSED_INDEXES.finding(Status.PASS, f"every index of >= {_gib(minimum)} has been scanned "
                                          "since statistics were last reset (or enforces a constraint)")
        held = sum(r["size_bytes"] for r in rows)
        names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} ({_gib(r['size_bytes'])})" for r in rows[:10])
        return UNUSED_INDEXES.finding(
            Status.WARN, f"{len(rows)} index(es) never scanned hold {_gib(held)}: {names}",
            "after confirming on every replica (idx_scan counts per server): "
            + " ".join(f"DROP INDEX CONCURRENTLY {r['schemaname']}.{r['indexrelname']};" for r in rows[:10]))

    def _duplicates(self) -> Finding:
        rows = sorted(self._index_rows()["duplicate"], key=lambda r: -r["size_bytes"])
        if not rows:
            return DUPLICATE_INDEXES.finding(Status.PASS, "no two indexes share table, columns, opclasses, "
                                             "expressions and predicate")
        held = sum(r["size_bytes"] for r in rows)
        names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} on {r['relname']} ({_gib(r['size_bytes'])})"
                          for r in rows[:10])
        return DUPLICATE_INDEXES.finding(
            Status.WARN, f"{len(rows)} index(es) duplicate another index of their table and hold {_gib(held)}: {names}",
            " ".join(f"DROP INDEX CONCURRENTLY {r['schemaname']}.{r['indexrelname']};" for r in rows[:10]))

    def _invalid(self) -> Finding:
        rows = sorted(self._index_rows()["invalid"], key=lambda r: -r["size_bytes"])
        if not rows:
            return INVALID_INDEXES.finding(Status.PASS, "every index is valid")
        names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} ({_gib(r['size_bytes'])})" for r in rows[:10])
        return INVALID_INDEXES.finding(
            Status.FAIL, f"{len(rows)} invalid index(es) (left by a failed CREATE INDEX CONCURRENTLY; maintained on "
            f"every write, never used) hold {_gib(sum(r['size_bytes'] for r in rows))}: {names}",
            " ".join(f"REINDEX INDEX CONCURRENTLY {r['schemaname']}.{r['indexrelname']};" for r in rows[:10]))

    # -- connections ----------------------------------------------------------------------
    def _connections(self) -> Finding:
        row = self._rows(_CONNECTIONS_SQL)[0]
        usable = row["max_connections"] - row["reserved"]
        ratio = row["used"] / usable if usable > 0 else 1.0
        evidence = (f"{row['used']} client connections of {usable} usable (max_connections {row['max_connections']} "
                    f"- {row['reserved']} reserved): {ratio:.0%}; {row['idle']} idle")
        status, suffix = saturation_status(ratio, self.thresholds)
        return CONNECTIONS.finding(status, evidence + suffix, POOLER_FIX if status != Status.PASS else "")

    def _idle(self) -> Finding:
        limit = self.thresholds.idle_in_transaction_seconds
        row = self._rows(_IDLE_SQL, {"limit": limit})[0]
        evidence = (f"{row['idle']} idle, {row['idle_in_tx']} idle in transaction "
                    f"(longest {row['max_idle_in_tx'] or 0:.0f}s)")
        if (row["max_idle_in_tx"] or 0) > limit:
            return IDLE.finding(Status.FAIL, evidence + f"; {row['over']} over {limit:.0f}s, holding locks and "
                                "blocking vacuum", "commit or roll back before awaiting anything else; set "
                                f"idle_in_transaction_session_timeout (e.g. '{limit:.0f}s') on the application role")
        return IDLE.finding(Status.PASS, evidence)

    def _per_app(self) -> Finding:
        guidance, origin = pool_guidance(self.dsn, self.cores, self.spindles)
        rows = self._rows(_PER_APP_SQL)
        over = [r for r in rows if r["connections"] > guidance]
        listed = ", ".join(f"{r['app']}: {r['connections']} ({r['idle']} idle)" for r in rows[:10]) or "none"
        evidence = f"connections per application: {listed}; guidance {origin}"
        if over:
            return PER_APP.finding(Status.WARN, evidence, "size each pool to at most " f"{guidance} connections "
                                   f"({', '.join(r['app'] for r in over)} exceed it); more connections "
                                   "than the server can run at once only queue inside PostgreSQL")
        return PER_APP.finding(Status.PASS, evidence)

    # -- logging and statements -----------------------------------------------------------
    def _slow_log(self) -> Finding:
        row = self._rows("SELECT setting, unit, vartype FROM pg_settings WHERE name = 'log_min_duration_statement'")[0]
        return slow_log_finding(to_base_unit(row["setting"], row["unit"], row["vartype"]), self.thresholds)

    def _statements(self) -> Finding:
        libs = self._rows("SELECT current_setting('shared_preload_libraries') AS libs")[0]["libs"]
        if "pg_stat_statements" not in libs:
            return STATEMENTS.finding(Status.FAIL, f"shared_preload_libraries = '{libs}'", _PGSS_FIX)
        if not self._pgss:
            return STATEMENTS.finding(Status.WARN, "loaded, but the extension is not created in this database "
                                      "(or this role cannot read it)", "CREATE EXTENSION pg_stat_statements; "
                                      "GRANT pg_read_all_stats TO <role>")
        count = self._rows(sql.SQL("SELECT count(*) AS n FROM {}").format(self._pgss_view))[0]["n"]
        return STATEMENTS.finding(Status.PASS, f"loaded; {count} statements recorded")

    def _top(self, order: str, limit: int, selects_only: bool = True) -> list[dict[str, Any]]:
        """The top ``limit`` application statements of this database by ``order``: plannable
        SELECTs only unless ``selects_only`` is false (then INSERT, UPDATE, DELETE... too).

        One read of pg_stat_statements serves every item: reading it with texts loads the
        server's whole query-text file, so it is done once per check.
        """
        if self._statement_rows is None:
            mean = "mean_exec_time" if self._version() >= 130000 else "mean_time"
            query = sql.SQL(_TOP_SQL).format(view=self._pgss_view, mean=sql.Identifier(mean))
            self._statement_rows = [r for r in self._rows(query, {"limit": max(self.plans, 5) * 5})
                                    if _DML.match(r["query"]) and not _MONITORING.search(r["query"])]
        rows = [r for r in self._statement_rows if not selects_only or index_advice.is_plannable_select(r["query"])]
        return sorted(rows, key=lambda r: -float(r[order]))[:limit]

    def _version(self) -> int:
        assert self.conn is not None
        return int(self.conn.info.server_version)

    def _slow(self) -> Finding:
        if not self._pgss:
            return SLOW.finding(Status.UNKNOWN, "pg_stat_statements is not available", _PGSS_FIX)
        cutoff = self.thresholds.slow_statement_mean_seconds
        rows = self._top("mean_s", 5, selects_only=False)  # a slow UPDATE is as slow as a slow SELECT
        slow = [r for r in rows if r["mean_s"] > cutoff]
        listed = "; ".join(f"{r['mean_s']:.3f}s mean x {r['calls']} calls: {_short(r['query'])}" for r in rows[:5])
        if slow:
            return SLOW.finding(Status.FAIL, f"{len(slow)} of the slowest statements average over {cutoff:g}s: "
                                + listed, "see pg.plans and pg.missing_indexes for their plans and indexes; "
                                "EXPLAIN (ANALYZE, BUFFERS) one with real parameters on a replica")
        return SLOW.finding(Status.PASS, f"no statement averages over {cutoff:g}s; slowest: {listed or 'none'}")

    def _unbounded(self) -> Finding:
        if not self._pgss:
            return UNBOUNDED.finding(Status.UNKNOWN, "pg_stat_statements is not available", _PGSS_FIX)
        limit = self.thresholds.rows_per_call
        rows = self._top("rows_per_call", 5)
        over = [r for r in rows if r["rows_per_call"] > limit]
        if over:
            listed = "; ".join(f"{r['rows_per_call']:.0f} rows/call x {r['calls']} calls: {_short(r['query'])}"
                               for r in over)
            return UNBOUNDED.finding(Status.WARN, f"{len(over)} SELECT statement(s) return over {limit:g} rows per "
                                     f"call: {listed}", "add LIMIT (keyset pagination) or aggregate in SQL")
        top = f"; most: {rows[0]['rows_per_call']:.0f} rows/call" if rows else ""
        return UNBOUNDED.finding(Status.PASS, f"no SELECT returns over {limit:g} rows per call{top}")

    # -- plans ----------------------------------------------------------------------------
    def _plans(self) -> Finding:
        if not self._pgss:
            return PLANS.finding(Status.UNKNOWN, "pg_stat_statements is not available", _PGSS_FIX)
        assert self.conn is not None
        statements = self._top("mean_s", self.plans)
        if not statements:
            return PLANS.finding(Status.UNKNOWN, "no SELECT statement recorded in this database yet",
                                 "run the check after the application has served traffic")
        planned, failures, notes = 0, [], []
        for row in statements:
            try:
                plan = index_advice.generic_plan(self.conn, row["query"], int(self._budget.seconds() * 1000))
            except psycopg.errors.QueryCanceled:
                raise
            except psycopg.Error as error:
                self._raise_if_lost(error)
                failures.append(f"`{_short(row['query'], 60)}`: {_first_line(error)}")
                continue
            planned += 1
            for scan in index_advice.filtered_seq_scans(plan):
                if self._table_rows(scan.schema, scan.table) < self.thresholds.missing_index_min_live_rows:
                    continue
                suggestion = index_advice.suggest_index(scan)
                if suggestion is None:
                    notes.append(f"`{_short(row['query'], 60)}` scans {scan.schema}.{scan.table} with filter "
                                 f"{_short(scan.filter, 80)} (no single index serves it)")
                elif self._has_leading_index(suggestion):
                    notes.append(f"`{_short(row['query'], 60)}` scans {scan.schema}.{scan.table} although an "
                                 f"index leads with {suggestion.columns[0]} (filter not selective?)")
                else:
                    self._suggestions.append((row["query"], suggestion))
                    notes.append(f"`{_short(row['query'], 60)}`: Seq Scan on {scan.schema}.{scan.table} "
                                 f"filtering {_short(scan.filter, 80)}")
        summary = f"generic plans of the {planned} slowest SELECT statements"
        if failures:
            summary += f" ({len(failures)} could not be planned: {'; '.join(failures[:3])})"
        if self._suggestions:
            return PLANS.finding(Status.WARN, f"{summary}: {'; '.join(notes)}",
                                 " ".join(sorted({s.sql() for _, s in self._suggestions})))
        if notes:
            return PLANS.finding(Status.WARN, f"{summary}: {'; '.join(notes)}",
                                 "rewrite the filter so an index can serve it (e.g. an expression index)")
        if failures:
            return PLANS.finding(Status.UNKNOWN, summary, "connect as a role that may read the tables "
                                 "(GRANT pg_read_all_data on PostgreSQL 14+, or SELECT on them)")
        return PLANS.finding(Status.PASS, f"{summary}: no sequential scan filters a table of >= "
                             f"{self.thresholds.missing_index_min_live_rows} rows")

    def _table_rows(self, schema: str, table: str) -> float:
        rows = self._rows("SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = %s AND c.relname = %s", (schema, table))
        return float(rows[0]["reltuples"]) if rows else 0.0

    def _has_leading_index(self, suggestion: index_advice.IndexSuggestion) -> bool:
        return bool(self._rows(_LEADING_INDEX_SQL, (suggestion.schema, suggestion.table, suggestion.columns[0])))


def _first_line(error: BaseException) -> str:
    return redact_text(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)






_CONNECTIONS_SQL = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,
       count(*) FILTER (WHERE backend_type = 'client backend') AS used,
       count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'idle') AS idle
FROM pg_stat_activity
"""

_IDLE_SQL = """
SELECT count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%%') AS idle_in_tx,
       max(extract(epoch FROM now() - state_change)) FILTER (WHERE state LIKE 'idle in transaction%%')
         AS max_idle_in_tx,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%%'
                        AND now() - state_change > make_interval(secs => %(limit)s)) AS over
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""

_PER_APP_SQL = """
SELECT coalesce(nullif(application_name, ''), '(no application_name)') AS app, count(*) AS connections,
       count(*) FILTER (WHERE state = 'idle') AS idle
FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1 ORDER BY 2 DESC
"""

_TOP_SQL = """
WITH s AS (
    SELECT s.queryid, s.userid, s.query, s.calls, s.rows, s.{mean} / 1000.0 AS mean_s,
           s.rows::float8 / s.calls AS rows_per_call
    FROM {view} s
    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.calls > 0
)
(SELECT * FROM s ORDER BY mean_s DESC LIMIT %(limit)s)
UNION
(SELECT * FROM s ORDER BY rows_per_call DESC LIMIT %(limit)s)
"""

_LEADING_INDEX_SQL = """
SELECT 1 FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
WHERE n.nspname = %s AND t.relname = %s AND a.attname = %s AND i.indisvalid
"""
