"""PostgreSQL items: indexes, connections, slow-query logging, statements and their plans.

Everything runs on one connection to the DSN's database, in ``default_transaction_read_only``
mode, with ``statement_timeout`` clipped to the check's deadline before every item; the one
exception is verifying an index candidate, built inside a transaction that is always rolled back.
Statement items read pg_stat_statements for that database only (its generic plans must be made
there) and judge only the application's statements (:mod:`stackwatch.core.postgres.commands`).
With Prometheus, slow statements are judged on the exporter's windowed series, as the alert does.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from stackwatch.core.postgres import activity, indexes, statements, tables
from stackwatch.core.postgres.commands import MONITORING_ROLES_SQL, classify, marked
from stackwatch.core.postgres.connection import ConnectionSettings, InvalidDSN, connect, parse_dsn
from stackwatch.core.postgres.settings import to_base_unit
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.core.redact import redact, redact_text
from stackwatch.core.text import byte_size
from stackwatch.promql import statement_mean_seconds
from stackwatch.thresholds import POSTGRES, SLOW_TIER_WINDOW, UNJUDGED_COMMANDS, PostgresThresholds

from . import index_advice
from .items import (
    CHURN,
    CONNECTIONS,
    DUPLICATE_INDEXES,
    IDLE,
    INVALID_INDEXES,
    MISSING_INDEXES,
    PER_APP,
    PLANS,
    SLOW,
    SLOW_LOG,
    STATEMENTS,
    UNBOUNDED,
    UNUSED_INDEXES,
)
from .items import POSTGRES_ITEMS as ITEMS
from .model import Finding, Item, SourceUnavailable, Status
from .plan_advice import UNBOUNDED_FIX, PlanAdvisor, first_line, short
from .postgres_churn import churn_finding
from .postgres_series import POOLER_FIX, saturation_status, slow_log_finding
from .promapi import Prometheus, PrometheusError
from .runner import Budget

__all__ = ["ITEMS", "PostgresCheck", "pool_guidance"]


_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
#: what pg_stat_statements lacks -> what makes it available
_PGSS_FIXES = {
    "not loaded": ("add pg_stat_statements to shared_preload_libraries, restart, then "
                   "CREATE EXTENSION pg_stat_statements in this database"),
    "not created": "CREATE EXTENSION pg_stat_statements; (in this database: the library is already loaded)",
    "not readable": "GRANT pg_read_all_stats TO <this role>; (or pg_monitor)",
}


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


@dataclass
class PostgresCheck:
    """The PostgreSQL items for one DSN (``plans``: how many of the slowest SELECTs to explain;
    ``prometheus``: where the exporter's windowed statement series are, when given)."""

    dsn: str
    plans: int = 10
    cores: int | None = None
    spindles: int = 1
    thresholds: PostgresThresholds = POSTGRES
    prometheus: Prometheus | None = None
    conn: psycopg.Connection | None = field(default=None, init=False, repr=False)
    _budget: Budget = field(init=False, repr=False)
    source: PostgresSource = field(init=False, repr=False)
    _classified: dict[str, list[dict[str, Any]]] | None = field(default=None, init=False, repr=False)
    _statement_rows: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _pgss_missing: str = field(default="", init=False, repr=False)
    _pgss_view: sql.Identifier = field(init=False, repr=False)
    _advisor: PlanAdvisor = field(init=False, repr=False)

    # -- plumbing -------------------------------------------------------------------------
    def run(self, budget: Budget) -> Iterator[Finding]:
        try:
            self._begin(budget)
            # statistics before plans: PostgreSQL 13 counts an EXPLAINed statement as one more call
            for item, check in ((SLOW, self._slow), (UNBOUNDED, self._unbounded), (PLANS, self._plans),
                                (MISSING_INDEXES, self._missing_indexes), (UNUSED_INDEXES, self._unused),
                                (DUPLICATE_INDEXES, self._duplicates), (INVALID_INDEXES, self._invalid),
                                (CONNECTIONS, self._connections), (IDLE, self._idle), (PER_APP, self._per_app),
                                (CHURN, lambda: churn_finding(self.source, self.thresholds)),
                                (SLOW_LOG, self._slow_log), (STATEMENTS, self._statements)):
                yield self._guarded(item, check)
        finally:
            if self.conn is not None:
                self.conn.close()

    def _begin(self, budget: Budget) -> None:
        """Connect and start this run's state afresh (a check object may run more than once)."""
        self.conn = conn = self._connect(budget)
        self._budget = budget
        self.source = PostgresSource(conn, self.dsn, int(conn.info.server_version), PostgresOptions())
        self._classified = None
        self._statement_rows = None
        self._pgss_missing = self._statements_missing()
        self._advisor = PlanAdvisor(conn, self.thresholds, self._rows, lambda: int(budget.seconds() * 1000),
                                    self._raise_if_lost, None if self._pgss_missing else self._pgss_view)
        with contextlib.suppress(psycopg.Error):  # before any index candidate is built (its reads count too)
            self._advisor.write_heavy()

    def _connect(self, budget: Budget) -> psycopg.Connection:
        where = redact(self.dsn)
        try:
            params = parse_dsn(self.dsn)
            params.setdefault("application_name", "stackwatch-check")
            dsn = make_conninfo(**params)
            timeout_ms = int(budget.seconds() * 1000)
            conn = connect(dsn, ConnectionSettings(budget.seconds(), timeout_ms, min(timeout_ms, 1000)))
            conn.prepare_threshold = None
            conn.execute(marked("SET default_transaction_read_only = on"))
            return conn
        except InvalidDSN as error:
            raise SourceUnavailable(f"--postgres-dsn: {error}") from None
        except psycopg.Error as error:
            raise SourceUnavailable(f"cannot connect to {where}: {first_line(error)}") from None

    def _guarded(self, item: Item, check: Callable[[], Finding]) -> Finding:
        """Run one item; a timeout or an error makes it ``unknown`` (a lost connection ends the source)."""
        assert self.conn is not None
        try:
            self.conn.execute(marked(f"SET statement_timeout = {int(self._budget.seconds() * 1000)}"))
            return check()
        except psycopg.errors.QueryCanceled:
            return item.finding(Status.UNKNOWN, f"query timed out after {self._budget.seconds():.1f}s",
                                "raise --timeout or --deadline")
        except psycopg.Error as error:
            self._raise_if_lost(error)
            return item.finding(Status.UNKNOWN, f"query failed: {first_line(error)}",
                                "connect as a role with pg_monitor (and SELECT on the tables for plans)")

    def _raise_if_lost(self, error: psycopg.Error) -> None:
        """A broken connection ends the source; any other error (a lock timeout...) ends one item."""
        assert self.conn is not None
        if self.conn.broken or self.conn.closed:
            raise SourceUnavailable(f"lost the connection to {redact(self.dsn)}: {first_line(error)}") from None

    def _rows(self, query: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
        return self.source.rows(query, params)

    def _statements_missing(self) -> str:
        """What keeps this role from reading pg_stat_statements here (a :data:`_PGSS_FIXES` key),
        or ``""`` when it can (the view found in whatever schema it lives)."""
        try:
            if not self.source.preloaded("pg_stat_statements"):
                return "not loaded"
            found = self._rows(statements.EXTENSION_SQL)
            if not found:
                return "not created"
            self._pgss_view = sql.Identifier(found[0]["schema"], "pg_stat_statements")
            self._rows(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(self._pgss_view))
            return ""
        except psycopg.Error as error:
            self._raise_if_lost(error)
            return "not readable"

    def _no_statements(self, item: Item) -> Finding:
        return item.finding(Status.UNKNOWN, f"pg_stat_statements is {self._pgss_missing} here",
                            _PGSS_FIXES[self._pgss_missing])

    # -- indexes --------------------------------------------------------------------------
    def _missing_indexes(self) -> Finding:
        t = self.thresholds
        suspects = sorted(((tables.suspect_score(r), r) for r in self._rows(tables.SQL)),
                          key=lambda pair: -pair[0])
        suspects = [(score, r) for score, r in suspects if score >= t.missing_index_suspect_score]
        foreign_keys = [fix for fix in (self._foreign_key_fix(r) for _, r in suspects) if fix]
        suggestions = self._advisor.suggestions
        fixes = sorted({s.fix() for s in suggestions} | {fix for _, fix in foreign_keys})
        if not suspects and not suggestions:
            return MISSING_INDEXES.finding(Status.PASS, "no table of >= "
                                           f"{t.missing_index_min_live_rows} rows is read mostly by sequential scans"
                                           + ("" if not self._pgss_missing else "; slowest statements not planned: "
                                              f"pg_stat_statements is {self._pgss_missing}"))
        lines = [f"{r['schemaname']}.{r['relname']}: {r['seq_scan']} seq scans read {r['seq_tup_read']} rows, "
                 f"{r['idx_scan']} index scans, {r['n_live_tup']} live rows (suspect score {score:.1f})"
                 for score, r in suspects[:10]]
        lines += [note for note, _ in foreign_keys]
        lines += [f"generic plan of `{short(s.statement, 70)}` scans {s.index.schema}.{s.index.table}; "
                  f"{s.outcome()}" for s in suggestions]
        fix = " ".join(fixes) if fixes else ("find the filtering statements in pg_stat_statements and index "
                                             "their columns (pg.plans does this for the slowest SELECTs)")
        return MISSING_INDEXES.finding(Status.FAIL, "; ".join(lines), fix)

    def _foreign_key_fix(self, table: dict[str, Any]) -> tuple[str, str] | None:
        """The index of an unindexed foreign key of a suspect ``table``, if it switches the plan of
        the lookup PostgreSQL runs on every delete or key update of the referenced row."""
        for fk in self._rows(_UNINDEXED_FOREIGN_KEYS_SQL, (table["schemaname"], table["relname"])):
            candidate = index_advice.IndexSuggestion(fk["schemaname"], fk["relname"], tuple(fk["columns"]))
            lookup = (f"SELECT 1 FROM ONLY {_ident(fk['schemaname'])}.{_ident(fk['relname'])} WHERE "
                      + " AND ".join(f"{_ident(c)} = ${i}" for i, c in enumerate(fk["columns"], 1)))
            if self._advisor.prove(lookup, candidate).switches:
                return (f"foreign key {fk['conname']} of {fk['schemaname']}.{fk['relname']} "
                        f"({', '.join(fk['columns'])}) has no index: every delete of a referenced row scans the "
                        "table", candidate.sql())
        return None

    def _index_rows(self) -> dict[str, list[dict[str, Any]]]:
        if self._classified is None:
            self._classified = indexes.classify(self._rows(indexes.SQL))
        return self._classified

    def _unused(self) -> Finding:
        minimum = self.thresholds.unused_index_min_bytes
        rows = [r for r in self._index_rows()["unused"] if r["size_bytes"] >= minimum]
        rows.sort(key=lambda r: -r["size_bytes"])
        heavy = self._write_heavy_note()
        if not rows and not heavy:
            return UNUSED_INDEXES.finding(Status.PASS, f"every index of >= {byte_size(minimum)} has been scanned "
                                          "since statistics were last reset (or enforces a constraint)")
        if not rows:
            return UNUSED_INDEXES.finding(Status.WARN, heavy.lstrip("; "), _WRITE_HEAVY_FIX)
        held = sum(r["size_bytes"] for r in rows)
        names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} ({byte_size(r['size_bytes'])})" for r in rows[:10])
        return UNUSED_INDEXES.finding(
            Status.WARN, f"{len(rows)} index(es) never scanned hold {byte_size(held)}: {names}{heavy}",
            "after confirming on every replica (idx_scan counts per server): "
            + " ".join(f"DROP INDEX CONCURRENTLY {r['schemaname']}.{r['indexrelname']};" for r in rows[:10])
            + (f" {_WRITE_HEAVY_FIX}" if heavy else ""))

    def _write_heavy_note(self) -> str:
        """The checklist's "when NOT to index" for tables: those written more than read that carry many indexes."""
        tables = sorted(self._advisor.write_heavy().items(), key=lambda kv: -float(kv[1]["writes"]))
        if not tables:
            return ""
        listed = ", ".join(
            f"{schema}.{table} ({r['indexes']} indexes; {r['writes']:.0f} rows written vs {r['reads']:.0f} read"
            + (f"; {r['n_tup_hot_upd'] / r['n_tup_upd']:.0%} of updates HOT" if r["n_tup_upd"] else "") + ")"
            for (schema, table), r in tables[:10])
        return (f"; write-heavy table(s) with >= {self.thresholds.write_heavy_table_indexes} indexes, each "
                f"maintained on every write: {listed}")

    def _duplicates(self) -> Finding:
        rows = sorted(self._index_rows()["duplicate"], key=lambda r: -r["size_bytes"])
        if not rows:
            return DUPLICATE_INDEXES.finding(Status.PASS, "no two indexes share table, columns, opclasses, "
                                             "expressions and predicate")
        held = sum(r["size_bytes"] for r in rows)
        names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} on {r['relname']} ({byte_size(r['size_bytes'])})"
                          for r in rows[:10])
        return DUPLICATE_INDEXES.finding(
            Status.WARN,
            f"{len(rows)} index(es) duplicate another index of their table and hold {byte_size(held)}: {names}",
            " ".join(f"DROP INDEX CONCURRENTLY {r['schemaname']}.{r['indexrelname']};" for r in rows[:10]))

    def _invalid(self) -> Finding:
        rows = sorted(self._index_rows()["invalid"], key=lambda r: -r["size_bytes"])
        if not rows:
            return INVALID_INDEXES.finding(Status.PASS, "every index is valid")
        names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} ({byte_size(r['size_bytes'])}"
                          + (", unique" if r["indisunique"] else "") + ")" for r in rows[:10])
        fixes = []
        for r in rows[:10]:
            name = f"{r['schemaname']}.{r['indexrelname']}"
            if r["indisunique"]:  # REINDEX would fail again on the same duplicates
                fixes.append(f"DROP INDEX CONCURRENTLY {name}; then remove the duplicate rows it found and "
                             f"create it again (CREATE UNIQUE INDEX CONCURRENTLY ...);")
            else:
                fixes.append(f"REINDEX INDEX CONCURRENTLY {name};")
        return INVALID_INDEXES.finding(
            Status.FAIL, f"{len(rows)} invalid index(es) (left by a failed CREATE INDEX CONCURRENTLY; maintained on "
            f"every write, never used) hold {byte_size(sum(r['size_bytes'] for r in rows))}: {names}", " ".join(fixes))

    # -- connections ----------------------------------------------------------------------
    def _activity(self) -> tuple[list[activity.Group], activity.Capacity]:
        """The exporter's own reading of pg_stat_activity and of the connection limits."""
        groups = [activity.Group.from_row(r) for r in self._rows(activity.ACTIVITY_SQL,
                                                                 {"own": activity.OWN_APPLICATION})]
        limits = self._rows(activity.LIMITS_SQL, {"max_roles": 0})[0]
        return groups, activity.capacity(groups, limits)

    def _connections(self) -> Finding:
        groups, cap = self._activity()
        idle = sum(g.backends for g in groups if g.state == "idle")
        evidence = (f"{cap.used} client connections of {cap.usable} usable (max_connections {cap.max_connections} "
                    f"- {cap.reserved} reserved): {cap.ratio:.0%}; {idle} idle")
        status, suffix = saturation_status(cap.ratio, self.thresholds)
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
        """The guidance is how many connections one server can run at once: it is compared with
        the connections running now (all applications together, this check's own left out), not
        with pools' idle connections, which cost memory but no CPU."""
        guidance, origin = pool_guidance(self.dsn, self.cores, self.spindles)
        groups, _ = self._activity()
        assert self.conn is not None
        apps: dict[str, list[int]] = {}
        for g in groups:
            totals = apps.setdefault(g.application_name or "(no application_name)", [0, 0])
            totals[0] += g.backends
            totals[1] += g.backends if g.state == "active" else 0
        own = apps.get(self.conn.info.parameter_status("application_name") or "(no application_name)")
        if own is not None:  # this check's own connection, running this query (not behind a pooler)
            own[0], own[1] = own[0] - 1, own[1] - 1
        apps = {app: totals for app, totals in apps.items() if totals[0] > 0}
        active = sum(active for _, active in apps.values())
        listed = ", ".join(f"{app}: {total} ({active_n} active)" for app, (total, active_n) in
                           sorted(apps.items(), key=lambda kv: (-kv[1][0], kv[0]))[:10]) or "none"
        evidence = (f"{active} active connection(s) of all applications against a guidance of {origin}; "
                    f"per application (information): {listed}")
        if active > guidance:
            return PER_APP.finding(Status.WARN, evidence, f"more than {guidance} statements running at once only "
                                   "queue inside PostgreSQL: cap the pools' total size (or put PgBouncer in "
                                   "transaction mode in front) near that number")
        return PER_APP.finding(Status.PASS, evidence)

    # -- logging and statements -----------------------------------------------------------
    def _slow_log(self) -> Finding:
        row = self._rows("SELECT setting, unit, vartype FROM pg_settings WHERE name = 'log_min_duration_statement'")[0]
        return slow_log_finding(to_base_unit(row["setting"], row["unit"], row["vartype"]), self.thresholds)

    def _statements(self) -> Finding:
        if self._pgss_missing == "not loaded":
            libs = self._rows("SELECT current_setting('shared_preload_libraries') AS libs")[0]["libs"]
            return STATEMENTS.finding(Status.FAIL, f"shared_preload_libraries = '{libs}'", _PGSS_FIXES["not loaded"])
        if self._pgss_missing:
            return STATEMENTS.finding(Status.WARN, f"loaded, but the extension is {self._pgss_missing} in this "
                                      "database", _PGSS_FIXES[self._pgss_missing])
        count = self._rows(sql.SQL("SELECT count(*) AS n FROM {}").format(self._pgss_view))[0]["n"]
        return STATEMENTS.finding(Status.PASS, f"loaded; {count} statements recorded")

    def _top(self, order: str, limit: int | None = None, command: str | None = None) -> list[dict[str, Any]]:
        """The top ``limit`` (all) application statements of this database by ``order`` (all but
        utility and monitoring ones, or only ``command``), each with its ``command``.

        One read of pg_stat_statements serves every item: reading it with texts loads the
        server's whole query-text file, so it is done once per check. Statements called at least
        the slow minimum of times rank first by mean time, so one-offs cannot crowd them out.
        """
        if self._statement_rows is None:
            mean = "mean_exec_time" if self.source.version >= 130000 else "mean_time"
            query = sql.SQL(_TOP_SQL).format(view=self._pgss_view, mean=sql.Identifier(mean))
            monitoring = {r["userid"] for r in self._rows(MONITORING_ROLES_SQL)}
            rows = self._rows(query, {"limit": max(self.plans, 5) * 5,
                                      "min_calls": self.thresholds.slow_statement_min_calls})
            for r in rows:
                r["command"] = classify(r["query"], r["userid"] in monitoring)
            self._statement_rows = [r for r in rows if r["command"] not in UNJUDGED_COMMANDS]
        rows = [r for r in self._statement_rows if command is None or r["command"] == command]
        return sorted(rows, key=lambda r: -float(r[order]))[:limit]

    def _slow(self) -> Finding:
        if self._pgss_missing:
            return self._no_statements(SLOW)
        windowed, note = self._windowed_slow() if self.prometheus is not None else (None, "")
        if windowed is not None:
            return windowed
        cutoff, minimum = self.thresholds.slow_statement_mean_seconds, self.thresholds.slow_statement_min_calls
        ranked = self._top("mean_s")
        rows = [r for r in ranked if r["calls"] >= minimum][:5]  # a slow UPDATE is as slow as a slow SELECT
        one_offs = sum(1 for r in ranked if r["calls"] < minimum and r["mean_s"] > cutoff)
        slow = [r for r in rows if r["mean_s"] > cutoff]
        listed = "; ".join(f"{r['mean_s']:.3f}s mean x {r['calls']} calls: {short(r['query'])}" for r in rows[:5])
        scope = (f" (since the statistics were reset; statements called fewer than {minimum} times left out"
                 + (f": {one_offs} slow one-off(s) such as data loads" if one_offs else "") + ")" + note)
        if slow:
            return SLOW.finding(Status.FAIL, f"{len(slow)} of the slowest statements average over {cutoff:g}s"
                                f"{scope}: {listed}", _SLOW_FIX)
        return SLOW.finding(Status.PASS, f"no statement averages over {cutoff:g}s{scope}; slowest: {listed or 'none'}")

    def _windowed_slow(self) -> tuple[Finding | None, str]:
        """The verdict on the exporter's series over the alert's window, or ``None`` and why not."""
        assert self.prometheus is not None and self.conn is not None
        database = f"datname={json.dumps(self.conn.info.dbname)}"
        t = self.thresholds
        try:
            means = self.prometheus.query(statement_mean_seconds(SLOW_TIER_WINDOW, "{" + database + "}"))
            if not means and not self.prometheus.query(f"count(pg_stat_statements_calls_total{{{database}}})"):
                return None, f"; Prometheus has no pg_stat_statements series for database {self.conn.info.dbname}"
        except (PrometheusError, SourceUnavailable) as error:
            return None, f"; Prometheus not used: {redact_text(str(error))}"
        means.sort(key=lambda pair: -pair[1])
        texts = {str(r["queryid"]): r["query"] for r in self._rows(
            sql.SQL("SELECT DISTINCT ON (queryid) queryid, query FROM {} WHERE queryid = ANY(%s)").format(
                self._pgss_view), ([int(labels.get("queryid", "0")) for labels, _ in means[:5]],))}
        listed = "; ".join(f"{mean:.3f}s mean ({labels.get('server', '?')}, {labels.get('command', '?')}): "
                           + short(texts.get(labels.get("queryid", ""), f"queryid {labels.get('queryid', '?')}"))
                           for labels, mean in means[:5])
        scope = (f" over the last {SLOW_TIER_WINDOW} (the exporter's series in Prometheus; utility, monitoring and "
                 f"statements called fewer than {t.slow_statement_min_calls} times left out)")
        slow = [mean for _, mean in means if mean > t.slow_statement_mean_seconds]
        if slow:
            return SLOW.finding(Status.FAIL, f"{len(slow)} statement(s) average over "
                                f"{t.slow_statement_mean_seconds:g}s{scope}: {listed}", _SLOW_FIX), ""
        return SLOW.finding(Status.PASS, f"no statement averages over {t.slow_statement_mean_seconds:g}s{scope}; "
                            f"slowest: {listed or 'none'}"), ""

    def _unbounded(self) -> Finding:
        if self._pgss_missing:
            return self._no_statements(UNBOUNDED)
        limit = self.thresholds.rows_per_call
        rows = self._top("rows_per_call", 5, command="select")  # rows an UPDATE changed were not read
        over = [r for r in rows if r["rows_per_call"] > limit]
        if over:
            listed = "; ".join(f"{r['rows_per_call']:.0f} rows/call x {r['calls']} calls: {short(r['query'])}"
                               for r in over)
            return UNBOUNDED.finding(Status.WARN, f"{len(over)} SELECT statement(s) return over {limit:g} rows per "
                                     f"call: {listed}", UNBOUNDED_FIX)
        top = f"; most: {rows[0]['rows_per_call']:.0f} rows/call" if rows else ""
        return UNBOUNDED.finding(Status.PASS, f"no SELECT returns over {limit:g} rows per call{top}")

    # -- plans ----------------------------------------------------------------------------
    def _plans(self) -> Finding:
        if self._pgss_missing:
            return self._no_statements(PLANS)
        selects = [r for r in self._top("mean_s", self.plans * 3, command="select")
                   if index_advice.is_plannable_select(r["query"])][:self.plans]
        if not selects:
            return PLANS.finding(Status.UNKNOWN, "no SELECT statement of the application recorded in this "
                                 "database yet", "run the check after the application has served traffic")
        planned = self._advisor.plan(selects)
        return self._advisor.verdict(planned, self._advisor.classify(planned))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_WRITE_HEAVY_FIX = ("on write-heavy tables keep only the indexes their reads need, and leave frequently updated "
                    "columns unindexed so updates stay HOT")
_SLOW_FIX = ("see pg.plans and pg.missing_indexes for their plans and indexes; EXPLAIN (ANALYZE, BUFFERS) one "
             "with real parameters on a replica")

_IDLE_SQL = """
SELECT count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%%') AS idle_in_tx,
       max(extract(epoch FROM now() - state_change)) FILTER (WHERE state LIKE 'idle in transaction%%')
         AS max_idle_in_tx,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%%'
                        AND now() - state_change > make_interval(secs => %(limit)s)) AS over
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""

_TOP_SQL = """
WITH s AS (
    SELECT s.queryid, s.userid::bigint AS userid, s.query, s.calls, s.rows, s.{mean} / 1000.0 AS mean_s,
           s.rows::float8 / s.calls AS rows_per_call
    FROM {view} s
    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.calls > 0
)
(SELECT * FROM s ORDER BY calls >= %(min_calls)s DESC, mean_s DESC LIMIT %(limit)s)
UNION
(SELECT * FROM s ORDER BY rows_per_call DESC LIMIT %(limit)s)
"""

# foreign keys of a table whose columns no valid index leads with
_UNINDEXED_FOREIGN_KEYS_SQL = """
SELECT c.conname, n.nspname AS schemaname, t.relname,
       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.i) AS columns
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'f' AND n.nspname = %s AND t.relname = %s
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indisvalid
                  AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey)
ORDER BY c.conname
"""

