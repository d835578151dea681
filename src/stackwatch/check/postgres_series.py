"""PostgreSQL items judged from the stackwatch exporter's series in Prometheus (no ``--postgres-dsn``).

The exporter already measures most of what the PostgreSQL items ask: missing-index suspect
scores, unused/duplicate/invalid index sizes, connection saturation, idle-in-transaction ages,
the slow-query log setting, pg_stat_statements and each statement's mean time. Every server the
exporter watches is judged and named in the evidence. Per-application connections, plans and
unbounded queries need the database itself (pg_stat_activity detail, PREPARE, statement kinds).
Standard library only: no PostgreSQL client is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from stackwatch.core.text import byte_size

from ..promql import statement_mean_seconds
from ..thresholds import POSTGRES, SLOW_TIER_WINDOW, PostgresThresholds
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
from .model import Finding, Status
from .promapi import Prometheus
from .runner import Budget
from .series import judge_from_series

__all__ = ["POOLER_FIX", "PostgresSeriesCheck", "saturation_status", "slow_log_finding"]

Row = tuple[dict[str, str], float]


def slow_log_finding(value: float, thresholds: PostgresThresholds = POSTGRES) -> Finding:
    """The slow-query-log verdict from ``log_min_duration_statement`` in seconds (-1 = off)."""
    cutoff = thresholds.slow_statement_mean_seconds
    fix = f"ALTER SYSTEM SET log_min_duration_statement = '{cutoff * 1000:.0f}ms'; SELECT pg_reload_conf();"
    if value < 0:
        return SLOW_LOG.finding(Status.FAIL, "log_min_duration_statement = -1: slow statements are not "
                                "logged", fix)
    if value == 0:
        return SLOW_LOG.finding(Status.WARN, "log_min_duration_statement = 0: every statement is logged", fix)
    if value > cutoff:
        return SLOW_LOG.finding(Status.WARN, f"log_min_duration_statement = {value:g}s: statements between "
                                f"{cutoff:g}s and {value:g}s are slow but not logged", fix)
    return SLOW_LOG.finding(Status.PASS, f"log_min_duration_statement = {value:g}s")


def saturation_status(ratio: float, thresholds: PostgresThresholds = POSTGRES) -> tuple[Status, str]:
    """The connections verdict for a saturation ratio, and what to append to the evidence."""
    if ratio >= thresholds.connection_saturation_critical:
        return Status.FAIL, f" (>= {thresholds.connection_saturation_critical:.0%})"
    if ratio >= thresholds.connection_saturation_warning:
        return Status.WARN, f" (>= {thresholds.connection_saturation_warning:.0%})"
    return Status.PASS, ""


POOLER_FIX = ("put a pooler (PgBouncer in transaction mode) in front or shrink the application pools; "
               "raise max_connections only with the memory for it")
_ORDER = (Status.FAIL, Status.WARN, Status.PASS)


def _name(labels: dict[str, str], *keys: str) -> str:
    """``server/datname schema.table``-style name of a series from its labels."""
    db = "/".join(v for v in (labels.get("server", ""), labels.get("datname", "")) if v)
    rest = ".".join(labels.get(k, "") for k in keys)
    return f"{db} {rest}".strip()


def _worst(findings: list[tuple[str, Finding]]) -> Finding:
    """One finding for several servers: the worst one's, naming it (and the count)."""
    server, worst = min(findings, key=lambda pair: _ORDER.index(pair[1].status))
    more = f" (the worst of {len(findings)} servers)" if len(findings) > 1 else ""
    return worst.item.finding(worst.status, f"{server}: {worst.evidence}{more}", worst.fix)


@dataclass
class PostgresSeriesCheck:
    """The PostgreSQL items from Prometheus alone, for every server the exporter watches."""

    url: str
    thresholds: PostgresThresholds = POSTGRES

    def run(self, budget: Budget) -> Iterator[Finding]:
        yield from judge_from_series(self.url, budget, (
            (MISSING_INDEXES, self._missing_indexes), (UNUSED_INDEXES, self._unused),
            (DUPLICATE_INDEXES, self._duplicates), (INVALID_INDEXES, self._invalid),
            (CONNECTIONS, self._connections), (IDLE, self._idle), (PER_APP, None), (CHURN, None),
            (SLOW_LOG, self._slow_log),
            (STATEMENTS, self._statements), (SLOW, self._slow), (PLANS, None), (UNBOUNDED, None)),
            "--postgres-dsn")

    # -- indexes --------------------------------------------------------------------------
    def _missing_indexes(self, prom: Prometheus) -> Finding | None:
        if not prom.query("count(pg_stat_user_tables_n_live_tup)"):
            return None
        t = self.thresholds
        suspects = sorted(prom.query(f"pg_table_missing_index_suspect_score >= {t.missing_index_suspect_score}"),
                          key=lambda r: -r[1])
        if not suspects:
            return MISSING_INDEXES.finding(Status.PASS, f"no table of >= {t.missing_index_min_live_rows} rows is "
                                           "read mostly by sequential scans")
        listed = "; ".join(f"{_name(m, 'schemaname', 'relname')} (suspect score {v:.1f})" for m, v in suspects[:10])
        return MISSING_INDEXES.finding(Status.FAIL, f"{len(suspects)} table(s) read mostly by sequential scans: "
                                       f"{listed}", "find the filtering statements in pg_stat_statements and index "
                                       "their columns (stackwatch check --postgres-dsn suggests the CREATE INDEX)")

    def _index_sizes(self, prom: Prometheus, kind: str, minimum: float = 0) -> list[Row] | None:
        if not prom.query(f"count(pg_indexes_{kind})"):
            return None
        return sorted(prom.query(f"pg_index_{kind}_size_bytes >= {minimum:g}"), key=lambda r: -r[1])

    def _listed(self, rows: list[Row]) -> str:
        return ", ".join(f"{_name(m, 'schemaname', 'indexrelname')} ({byte_size(v)})" for m, v in rows[:10])

    @staticmethod
    def _drops(rows: list[Row]) -> str:
        return " ".join(f"DROP INDEX CONCURRENTLY {m.get('schemaname')}.{m.get('indexrelname')};" for m, _ in rows[:10])

    def _unused(self, prom: Prometheus) -> Finding | None:
        minimum = self.thresholds.unused_index_min_bytes
        rows = self._index_sizes(prom, "unused", minimum)
        if rows is None:
            return None
        if not rows:
            return UNUSED_INDEXES.finding(Status.PASS, f"every index of >= {byte_size(minimum)} has been scanned since "
                                          "statistics were last reset (or enforces a constraint)")
        return UNUSED_INDEXES.finding(Status.WARN, f"{len(rows)} index(es) never scanned hold "
                                      f"{byte_size(sum(v for _, v in rows))}: {self._listed(rows)}",
                                      "after confirming on every replica (idx_scan counts per server): "
                                      + self._drops(rows))

    def _duplicates(self, prom: Prometheus) -> Finding | None:
        rows = self._index_sizes(prom, "duplicate")
        if rows is None:
            return None
        if not rows:
            return DUPLICATE_INDEXES.finding(Status.PASS, "no two indexes share table, columns, opclasses, "
                                             "expressions and predicate")
        return DUPLICATE_INDEXES.finding(Status.WARN, f"{len(rows)} index(es) duplicate another index of their "
                                         f"table and hold {byte_size(sum(v for _, v in rows))}: {self._listed(rows)}",
                                         self._drops(rows))

    def _invalid(self, prom: Prometheus) -> Finding | None:
        rows = self._index_sizes(prom, "invalid")
        if rows is None:
            return None
        if not rows:
            return INVALID_INDEXES.finding(Status.PASS, "every index is valid")
        return INVALID_INDEXES.finding(Status.FAIL, f"{len(rows)} invalid index(es) (left by a failed CREATE INDEX "
                                       f"CONCURRENTLY; maintained on every write, never used): {self._listed(rows)}",
                                       "drop each and create it again (REINDEX INDEX CONCURRENTLY); a UNIQUE one "
                                       "fails again until its duplicate rows are fixed: "
                                       "stackwatch check --postgres-dsn tells which")

    # -- connections ----------------------------------------------------------------------
    def _connections(self, prom: Prometheus) -> Finding | None:
        ratios = prom.query("pg_connections_saturation_ratio")
        if not ratios:
            return None
        used = {m.get("server", ""): v for m, v in prom.query("pg_connections_used")}
        findings = []
        for labels, ratio in ratios:
            server = labels.get("server", "")
            status, suffix = saturation_status(ratio, self.thresholds)
            evidence = f"{used.get(server, 0):.0f} client connections, {ratio:.0%} of the usable slots{suffix}"
            findings.append((server, CONNECTIONS.finding(status, evidence, POOLER_FIX if status != Status.PASS
                                                         else "")))
        return _worst(findings)

    def _idle(self, prom: Prometheus) -> Finding | None:
        ages = prom.query("pg_stat_activity_idle_in_transaction_max_seconds")
        if not ages:
            return None
        count = {m.get("server", ""): v for m, v in prom.query("pg_stat_activity_idle_in_transaction_backends")}
        limit = self.thresholds.idle_in_transaction_seconds
        findings = []
        for labels, age in ages:
            server = labels.get("server", "")
            evidence = f"{count.get(server, 0):.0f} idle in transaction (longest {age:.0f}s)"
            if age > limit:
                findings.append((server, IDLE.finding(
                    Status.FAIL, evidence + f", over {limit:.0f}s: holding locks and blocking vacuum",
                    "commit or roll back before awaiting anything else; set idle_in_transaction_session_timeout "
                    f"(e.g. '{limit:.0f}s') on the application role")))
            else:
                findings.append((server, IDLE.finding(Status.PASS, evidence)))
        return _worst(findings)

    # -- logging and statements -----------------------------------------------------------
    def _slow_log(self, prom: Prometheus) -> Finding | None:
        values = prom.query("pg_settings_log_min_duration_statement_seconds")
        if not values:
            return None
        return _worst([(m.get("server", ""), slow_log_finding(v, self.thresholds)) for m, v in values])

    def _statements(self, prom: Prometheus) -> Finding | None:
        loaded = prom.query("pg_settings_pg_stat_statements_loaded")
        if not loaded:
            return None
        missing = {m.get("server", ""): m.get("reason", "") for m, v in prom.query(
            'pg_scrape_collector_disabled{collector="statements"}') if v == 1}
        entries = {m.get("server", ""): v for m, v in prom.query("pg_stat_statements_entries")}
        findings = []
        for labels, value in loaded:
            server = labels.get("server", "")
            if value == 0:
                findings.append((server, STATEMENTS.finding(
                    Status.FAIL, "not in shared_preload_libraries", "add pg_stat_statements to "
                    "shared_preload_libraries, restart, then CREATE EXTENSION pg_stat_statements")))
            elif server in missing:
                findings.append((server, STATEMENTS.finding(
                    Status.WARN, f"loaded, but the exporter cannot read it ({missing[server]})",
                    "CREATE EXTENSION pg_stat_statements in the exporter's database; GRANT pg_read_all_stats "
                    "TO the exporter's role")))
            else:
                findings.append((server, STATEMENTS.finding(
                    Status.PASS, f"loaded; {entries.get(server, 0):.0f} statements recorded")))
        return _worst(findings)

    def _slow(self, prom: Prometheus) -> Finding | None:
        if not prom.query("pg_stat_statements_entries"):
            return None
        cutoff = self.thresholds.slow_statement_mean_seconds
        means = sorted(prom.query(statement_mean_seconds(SLOW_TIER_WINDOW)), key=lambda r: -r[1])
        texts = {(m.get("server"), m.get("datname"), m.get("queryid")): m.get("query", "")
                 for m, _ in prom.query("pg_stat_statements_query_info")}

        def shown(labels: dict[str, str], mean: float) -> str:
            text = texts.get((labels.get("server"), labels.get("datname"), labels.get("queryid")), "")
            return f"{mean:.3f}s mean: {_name(labels)} {text[:100] or 'queryid ' + labels.get('queryid', '?')}"

        slow = [(m, v) for m, v in means if v > cutoff]
        listed = "; ".join(shown(m, v) for m, v in means[:5])
        if slow:
            return SLOW.finding(Status.FAIL, f"{len(slow)} statement(s) averaged over {cutoff:g}s per call in the "
                                f"last {SLOW_TIER_WINDOW}: " + "; ".join(shown(m, v) for m, v in slow[:5]),
                                "stackwatch check --postgres-dsn shows their plans; EXPLAIN (ANALYZE, BUFFERS) "
                                "one with real parameters on a replica")
        return SLOW.finding(Status.PASS, f"no statement averaged over {cutoff:g}s per call in the last "
                            f"{SLOW_TIER_WINDOW}; slowest: {listed or 'none called'}")
