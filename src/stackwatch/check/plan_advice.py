"""``pg.plans``: the generic plans of the slowest SELECTs, what each scan in them needs, the verdict.

Three steps, one method each: :meth:`PlanAdvisor.plan` (the generic plan of every statement,
telling apart texts that cannot be planned and tables this role may not read),
:meth:`PlanAdvisor.classify` (per scan on a table of at least ``missing_index_min_live_rows`` rows:
a verified index, a LIMIT, a deliberate "do not index", or nothing) and :meth:`PlanAdvisor.verdict`.

The checklist's "when NOT to index" is kept: small tables are never planned for, a filter that
keeps more than ``index_max_filter_share`` of the table (a column of a few values) gets no index,
and a column the application's UPDATEs set more often than the SELECT runs is not indexed (an
index on it ends HOT updates); an index suggested for a write-heavy table that already carries
``write_heavy_table_indexes`` indexes says what it will cost. An index is only suggested once
building it (in a rolled-back transaction) switches the generic plan to it; a trigram index that
cannot be built because pg_trgm is not installed (or this role may not create it) is shown with
that reason and the install step instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from stackwatch.core.postgres.query_text import normalize_query
from stackwatch.core.redact import redact_text
from stackwatch.thresholds import PostgresThresholds

from . import index_advice
from .index_advice import IndexSuggestion, ScanFilter
from .items import PLANS
from .model import Finding, Status

__all__ = ["UNBOUNDED_FIX", "Advice", "Planned", "PlanAdvisor", "Proof", "Suggestion", "first_line", "short"]

UNBOUNDED_FIX = "add LIMIT (keyset pagination) or aggregate in SQL"
_TRGM_FIX = ("install PostgreSQL's contrib modules on the server (Debian/Ubuntu: they come with postgresql-<major>; "
             "RHEL: postgresql<major>-contrib), then")


def short(query: str, limit: int = 100) -> str:
    """Whitespace collapsed, passwords redacted, cut to ``limit`` bytes (the exporter's rules)."""
    return normalize_query(query, limit)


def first_line(error: BaseException) -> str:
    return redact_text(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


@dataclass(frozen=True)
class Proof:
    """What building a candidate did to the generic plan: it ``switches`` to it, or it could not
    be built at all (``unprovable``: why, e.g. pg_trgm missing)."""

    switches: bool
    unprovable: str = ""


@dataclass(frozen=True)
class Suggestion:
    """An index for ``statement``: verified (``unprovable`` empty) or shown with why it is not."""

    statement: str
    index: IndexSuggestion
    unprovable: str = ""
    #: the parameter value it serves, for an index on a skewed column's rare value
    when: str = ""

    def fix(self) -> str:
        return f"{_TRGM_FIX} {self.index.sql()}" if "not installed" in self.unprovable else self.index.sql()

    def outcome(self) -> str:
        if self.unprovable:
            return f"{self.index.definition()} should serve it (not proven: {self.unprovable})"
        return f"{self.index.definition()} turns it into an index scan" + (f" {self.when}" if self.when else "")


@dataclass
class Planned:
    """The planning step's result: ``(statement row, generic plan)`` pairs and the texts left out."""

    plans: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    unplannable: list[str] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Advice:
    """What to say about one scan; ``fix`` the change shown to help, ``judged`` False for a note
    that changes no verdict (a deliberate "do not index")."""

    note: str
    fix: str = ""
    judged: bool = True


@dataclass
class PlanAdvisor:
    """The plan steps on one connection; ``rows`` runs a read query, ``timeout_ms`` is the time
    left for one statement, ``lost`` raises when the connection is gone."""

    conn: psycopg.Connection
    thresholds: PostgresThresholds
    rows: Callable[..., list[dict[str, Any]]]
    timeout_ms: Callable[[], int]
    lost: Callable[[psycopg.Error], None]
    pgss_view: sql.Composable | None = None
    suggestions: list[Suggestion] = field(default_factory=list)
    heavy: dict[tuple[str, str], dict[str, Any]] | None = None  # see write_heavy()
    updates: list[dict[str, Any]] | None = None  # the application's UPDATE statements, most called first

    # -- planning -------------------------------------------------------------------------
    def generic_plan(self, query: str, setup: tuple[str, ...] = ()) -> dict[str, Any]:
        """:func:`index_advice.generic_plan` on this connection and budget (a lost connection ends the source)."""
        try:
            return index_advice.generic_plan(self.conn, query, self.timeout_ms(), setup)
        except psycopg.Error as error:
            self.lost(error)
            raise

    def plan(self, selects: list[dict[str, Any]]) -> Planned:
        planned = Planned()
        for row in selects:
            try:
                planned.plans.append((row, self.generic_plan(row["query"])))
            except psycopg.errors.QueryCanceled:
                raise  # out of time: the item is unknown
            except psycopg.errors.InsufficientPrivilege as error:
                planned.denied.append(f"`{short(row['query'], 60)}`: {first_line(error)}")
            except psycopg.Error as error:  # a text PostgreSQL cannot PREPARE (e.g. extract($1 FROM ...))
                planned.unplannable.append(f"`{short(row['query'], 60)}`: {first_line(error)}")
        return planned

    # -- classification -------------------------------------------------------------------
    def classify(self, planned: Planned) -> list[Advice]:
        found = []
        for row, plan in planned.plans:
            for scan in index_advice.scans_to_index(plan):
                table_rows = self._table_rows(scan.schema, scan.table)
                if table_rows < self.thresholds.missing_index_min_live_rows:
                    continue  # "don't index small tables"
                advice = self.advice(row, scan, table_rows)
                if advice is not None:
                    found.append(advice)
        return found

    def advice(self, row: dict[str, Any], scan: ScanFilter, table_rows: float) -> Advice | None:
        """What to say about one scan, or ``None`` when it is fine (an index scan sorted under a
        LIMIT is only worth an index with the sort key from ``sorted_scan_min_rows`` matches).

        An index is only tried when the filter keeps a small share of the table: for a column of
        a few values the planner reads the table anyway. Then the statement reading too many rows
        is the problem (LIMIT/pagination fixes it), or nothing is (a bounded result stops early).
        """
        t = self.thresholds
        if scan.indexed and scan.plan_rows < t.sorted_scan_min_rows:
            return None  # a few matches sort in no time
        what = "sorts rows of an index scan on" if scan.indexed else "Seq Scan on"
        where = f"`{short(row['query'], 60)}`: {what} {scan.schema}.{scan.table} filtering {short(scan.filter, 80)}"
        share = scan.plan_rows / table_rows if table_rows else 1.0
        if share <= t.index_max_filter_share:
            cost = self._write_cost(scan)
            found, updated = self._index_for(row, scan)
            if found is not None:
                self.suggestions.append(found)
                return Advice(f"{where}; {found.outcome()}{cost}", found.fix())
            if updated:
                return Advice(f"{where}; not indexed: {updated}", judged=False)
        if scan.indexed:
            return None
        skewed = self._skewed_index(row, scan) if share > t.index_max_filter_share else None
        if skewed is not None:
            self.suggestions.append(skewed)
            return Advice(f"{where}; {skewed.outcome()}{self._write_cost(scan)}", skewed.fix())
        if row["rows_per_call"] > t.rows_per_call:
            return Advice(f"{where} keeps ~{share:.0%} of {table_rows:.0f} rows{self._distinct_values(scan)} and "
                          f"returns {row['rows_per_call']:.0f} rows per call: an index would not help, the statement "
                          f"reads too much", f"{UNBOUNDED_FIX}: `{short(row['query'], 60)}`;")
        if share > t.index_max_filter_share:
            return None
        return Advice(f"{where} (no index tried switches its generic plan)")

    def _index_for(self, row: dict[str, Any], scan: ScanFilter) -> tuple[Suggestion | None, str]:
        """The first candidate shown to help (or that could not be built, saying why), and why
        candidates on frequently updated columns were left out."""
        updated = self._updated_columns(scan.schema, scan.table)
        skipped = ""
        columns = self._columns(scan)
        for candidate in index_advice.candidates(scan, columns, self.thresholds.hash_index_min_avg_width):
            hot = [(column, updated[column]) for column in candidate.columns
                   if column in updated and updated[column][0] >= row["calls"]]
            if hot:
                column, (calls, update) = hot[0]
                skipped = skipped or (f"{column} is set by `{short(update, 60)}` ({calls} calls, at least as often as "
                                      f"this SELECT's {row['calls']}): an index on it would end HOT updates")
                continue
            proof = self.prove(row["query"], candidate)
            if proof.switches or proof.unprovable:
                return Suggestion(row["query"], candidate, proof.unprovable), skipped
        return None, skipped

    def _skewed_index(self, row: dict[str, Any], scan: ScanFilter) -> Suggestion | None:
        """A partial index on the rare value of a skewed column the filter compares with a
        parameter (``active = $1``, one value in ``partial_index_skew_share`` of the rows): tried
        on the statement with that value substituted, suggested only when it switches that plan,
        which no index served before. Frequently updated columns are left out, as for the others."""
        equalities = index_advice.parameter_equalities(scan)
        if not equalities:
            return None
        stats = {r["attname"]: r for r in self.rows(_SKEW_SQL, (scan.schema, scan.table, [c for c, _ in equalities]))}
        updated = self._updated_columns(scan.schema, scan.table)
        skew = self.thresholds.partial_index_skew_share
        for column, n in equalities:
            r = stats.get(column)
            rare = index_advice.rare_value(r["vals"], r["freqs"], skew) if r is not None else None
            if r is None or rare is None or (column in updated and updated[column][0] >= row["calls"]):
                continue
            literal = index_advice.sql_literal(rare[0], r["type"])
            query = index_advice.with_parameter(row["query"], n, literal)
            candidate = index_advice.skewed_candidate(scan, column, literal)
            try:
                served = any(node.get("Relation Name") == scan.table and "Index Name" in node
                             for node in index_advice.nodes(self.generic_plan(query)))
            except psycopg.errors.QueryCanceled:
                raise
            except psycopg.Error:
                continue
            if not served and self.prove(query, candidate).switches:
                return Suggestion(row["query"], candidate, when=f"when called with {column} = {literal} "
                                  f"({rare[1]:.0%} of the rows, by pg_stats)")
        return None

    def prove(self, query: str, candidate: IndexSuggestion) -> Proof:
        """Whether building ``candidate`` (in a rolled-back transaction) makes the generic plan use it."""
        name = "stackwatch_check_candidate"
        trigram = candidate.opclass == "gin_trgm_ops"
        if trigram and not self.rows("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"):
            return Proof(False, "pg_trgm is not installed on the server")
        setup = (("CREATE EXTENSION IF NOT EXISTS pg_trgm",) if trigram else ()) + (
            candidate.definition(name, concurrently=False),)
        try:
            return Proof(index_advice.uses_index(self.generic_plan(query, setup), name))
        except psycopg.errors.QueryCanceled:
            return Proof(False)  # too large to build within --timeout: not shown to help, not suggested
        except psycopg.errors.InsufficientPrivilege as error:
            if trigram and "extension" in str(error):
                return Proof(False, f"this role may not create the pg_trgm extension here ({first_line(error)})")
            return Proof(False)  # not the table's owner: not verified, not suggested
        except psycopg.Error:
            return Proof(False)

    def _columns(self, scan: ScanFilter) -> dict[str, index_advice.Column]:
        """The kind and average width of every column of the scanned table (for GIN, GiST, Hash)."""
        return {r["attname"]: index_advice.Column(r["kind"], float(r["avg_width"] or 0))
                for r in self.rows(_COLUMNS_SQL, (scan.schema, scan.table))}

    def _updated_columns(self, schema: str, table: str) -> dict[str, tuple[int, str]]:
        """Columns the application's UPDATE statements on ``table`` set: the most calls and that statement."""
        if self.pgss_view is None:
            return {}
        if self.updates is None:  # one read of pg_stat_statements per check
            self.updates = self.rows(sql.SQL(_UPDATES_SQL).format(self.pgss_view))
        found: dict[str, tuple[int, str]] = {}
        for r in self.updates:
            target = _UPDATE.match(r["query"])
            if target is None or _bare(target["table"]) != table or (
                    target["schema"] and _bare(target["schema"]) != schema):
                continue
            for column in _assigned(target["rest"]):
                if column not in found or found[column][0] < r["calls"]:
                    found[column] = (int(r["calls"]), r["query"])
        return found

    def write_heavy(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Tables written more than read (rows) that carry ``write_heavy_table_indexes`` indexes or
        more, read once per check: the candidates built to prove an index read the tables too."""
        if self.heavy is None:
            t = self.thresholds
            self.heavy = {(r["schemaname"], r["relname"]): r for r in self.rows(
                _WRITE_HEAVY_SQL, {"indexes": t.write_heavy_table_indexes, "min_rows": t.missing_index_min_live_rows})}
        return self.heavy

    def _write_cost(self, scan: ScanFilter) -> str:
        """A caution when the scanned table is write-heavy and already carries many indexes."""
        r = self.write_heavy().get((scan.schema, scan.table))
        if r is None:
            return ""
        return (f" (mind the cost: {scan.schema}.{scan.table} is write-heavy, {r['writes']:.0f} rows written vs "
                f"{r['reads']:.0f} read, and already has {r['indexes']} indexes that every write maintains)")

    def _distinct_values(self, scan: ScanFilter) -> str:
        suggestion = index_advice.suggest_index(scan)
        if suggestion is None:
            return ""
        rows = self.rows(_N_DISTINCT_SQL, (scan.schema, scan.table, list(suggestion.columns)))
        return "".join(f", {r['attname']} has {r['n_distinct']:.0f} distinct values" for r in rows
                       if 0 < r["n_distinct"] <= 1 / self.thresholds.index_max_filter_share)

    def _table_rows(self, schema: str, table: str) -> float:
        rows = self.rows("SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = %s AND c.relname = %s", (schema, table))
        return float(rows[0]["reltuples"]) if rows else 0.0

    # -- verdict --------------------------------------------------------------------------
    def verdict(self, planned: Planned, advice: list[Advice]) -> Finding:
        summary = f"generic plans of the {len(planned.plans)} slowest SELECT statements"
        if planned.unplannable:
            summary += f" ({len(planned.unplannable)} not plannable: {'; '.join(planned.unplannable[:3])})"
        if planned.denied:
            summary += f" ({len(planned.denied)} not readable by this role: {'; '.join(planned.denied[:3])})"
        notes = "; ".join(a.note for a in advice)
        fixes = [a.fix for a in advice if a.fix]
        if fixes:
            return PLANS.finding(Status.WARN, f"{summary}: {notes}", " ".join(dict.fromkeys(fixes)))
        if any(a.judged for a in advice):
            return PLANS.finding(Status.WARN, f"{summary}: {notes}",
                                 "rewrite the filter so an index can serve it (e.g. an expression index)")
        if planned.denied:  # what this role could not read was not judged: no pass on it
            return PLANS.finding(Status.UNKNOWN, summary, "connect as a role that may read the tables "
                                 "(GRANT pg_read_all_data on PostgreSQL 14+, or SELECT on them)")
        if not planned.plans:
            return PLANS.finding(Status.UNKNOWN, summary, "plan them by hand with EXPLAIN and real parameters")
        return PLANS.finding(Status.PASS, f"{summary}: no scan of a table of >= "
                             f"{self.thresholds.missing_index_min_live_rows} rows needs an index"
                             + (f" ({notes})" if notes else ""))


_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
# "UPDATE [ONLY] [schema.]table [[AS] alias] SET <assignments> [FROM/WHERE/RETURNING ...]"
_UPDATE = re.compile(rf"(?is)^\s*update\s+(?:only\s+)?(?:(?P<schema>{_IDENT})\.)?(?P<table>{_IDENT})"
                     rf"(?:\s+(?:as\s+)?(?!set\b){_IDENT})?\s+set\s+(?P<rest>.*)$")
_ASSIGNED = re.compile(rf"^\s*\(?\s*(?P<columns>{_IDENT}(?:\s*,\s*{_IDENT})*)\s*\)?\s*=", re.S)


def _bare(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def _assigned(rest: str) -> list[str]:
    """The columns an UPDATE's SET list assigns (up to its FROM, WHERE or RETURNING)."""
    depth, start, parts = 0, 0, []
    for i, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char == ",":
            parts.append(rest[start:i])
            start = i + 1
        elif depth == 0 and re.match(r"(?i)\s(from|where|returning)\b", rest[i:]):
            break
    else:
        i = len(rest)
    parts.append(rest[start:i])
    columns = []
    for part in parts:
        match = _ASSIGNED.match(part)
        if match:
            columns += [_bare(c.strip()) for c in match["columns"].split(",")]
    return columns


_UPDATES_SQL = """
SELECT query, calls FROM {} WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ~* '^\\s*update\\s' ORDER BY calls DESC LIMIT 100
"""

_COLUMNS_SQL = """
SELECT a.attname::text AS attname, s.avg_width,
       CASE WHEN t.typname = 'jsonb' THEN 'jsonb' WHEN t.typname = 'tsvector' THEN 'tsvector'
            WHEN t.typcategory = 'A' THEN 'array' WHEN t.typtype IN ('r', 'm') THEN 'range'
            WHEN t.typcategory = 'G' THEN 'geometric' ELSE 'scalar' END AS kind
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""

_SKEW_SQL = """
SELECT s.attname::text AS attname, s.most_common_vals::text::text[] AS vals,
       s.most_common_freqs::float8[] AS freqs, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
WHERE s.schemaname = %s AND s.tablename = %s AND s.attname = ANY(%s) AND NOT s.inherited
  AND s.most_common_vals IS NOT NULL
"""

_WRITE_HEAVY_SQL = """
SELECT * FROM (
    SELECT s.schemaname::text AS schemaname, s.relname::text AS relname,
           s.n_tup_ins + s.n_tup_upd + s.n_tup_del AS writes, s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) AS reads,
           s.n_tup_upd, s.n_tup_hot_upd, (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid) AS indexes
    FROM pg_stat_user_tables s WHERE s.n_live_tup >= %(min_rows)s
) t WHERE writes > reads AND indexes >= %(indexes)s ORDER BY writes DESC LIMIT 50
"""

_N_DISTINCT_SQL = """
SELECT attname::text AS attname,
       CASE WHEN n_distinct < 0 THEN -n_distinct * c.reltuples ELSE n_distinct END::float8 AS n_distinct
FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
WHERE s.schemaname = %s AND s.tablename = %s AND s.attname = ANY(%s)
"""
