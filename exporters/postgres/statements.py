"""pg_stat_statements: instance totals always, a bounded sticky top N of statements, their text.

Each poll reads every statement's counters with ``pg_stat_statements(false)`` (no query text:
reading texts makes the server load its whole text file) and compares them with the previous
poll. The statements exported are chosen on that window:

* the union of the top ``k`` by total time, calls, mean time, shared blocks read and temp blocks
  written (``k = statements_top_n / 10``, so the fresh picks fill at most half the budget);
* plus, up to ``statements_top_n``, statements chosen in the last :data:`STICKY_WINDOWS` windows
  (most recently chosen first), so a statement that drops out of the tops for a poll or two keeps
  its series instead of churning them.

The first poll has no window yet and ranks on the counters since the statistics reset. Query
texts are fetched only for newly chosen statements and cached while they stay chosen.

Every exported statement carries a ``command`` label (:mod:`.commands`: select, insert, update,
delete, utility, monitoring, other), classified from its text and its role, so rows changed are
told from rows read and maintenance or monitoring statements from the application's. The slow
count judges only the application's statements called at least ``slow_statement_min_calls``
times in the window.

Instance totals are kept by the collector from the windows of every statement (top-level
statements only from PostgreSQL 14, where nested ones are marked), so they stay monotonic when
pg_stat_statements evicts entries. Rows of the same ``(user, database, queryid)`` that differ only
in ``toplevel`` are summed into one statement.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, fields

import psycopg
from prometheus_client.core import Metric
from psycopg import sql

from stackwatch.core.postgres.commands import MONITORING_ROLES_SQL, classify
from stackwatch.core.postgres.query_text import normalize_query
from stackwatch.core.postgres.source import PostgresSource
from stackwatch.core.postgres.statements import EXTENSION_SQL
from stackwatch.thresholds import UNJUDGED_COMMANDS

from ..collector import Collector, CollectorDisabled, Tier
from ..families import counter, gauge, info

__all__ = ["STICKY_WINDOWS", "Counters", "Key", "StatementsCollector", "choose", "window"]

log = logging.getLogger("stackwatch.exporters")

#: windows a chosen statement stays exported after it left the tops.
STICKY_WINDOWS = 3

Key = tuple[int, int, int]  # userid, dbid, queryid

# {time}/{read_time}: the columns' names in this version of the extension; {toplevel}: a filter
# for the top-level statements (always true before PostgreSQL 14).
COUNTERS_SQL = """
SELECT s.userid::bigint AS userid, s.dbid::bigint AS dbid, s.queryid,
       pg_get_userbyid(s.userid) AS usename, coalesce(d.datname, s.dbid::text) AS datname,
       sum(s.calls)::float8 AS calls, sum(s.{time})::float8 / 1000 AS seconds, sum(s.rows)::float8 AS rows,
       sum(s.shared_blks_read)::float8 AS blks_read, sum(s.{read_time})::float8 / 1000 AS read_seconds,
       sum(s.temp_blks_written)::float8 AS temp_blks_written,
       coalesce(sum(s.calls) FILTER (WHERE {toplevel}), 0)::float8 AS top_calls,
       coalesce(sum(s.{time}) FILTER (WHERE {toplevel}), 0)::float8 / 1000 AS top_seconds,
       coalesce(sum(s.rows) FILTER (WHERE {toplevel}), 0)::float8 AS top_rows
FROM {schema}.pg_stat_statements(false) s LEFT JOIN pg_database d ON d.oid = s.dbid
WHERE s.queryid IS NOT NULL
GROUP BY s.userid, s.dbid, s.queryid, d.datname
"""

TEXTS_SQL = """
SELECT DISTINCT ON (s.userid, s.dbid, s.queryid) s.userid::bigint AS userid, s.dbid::bigint AS dbid,
       s.queryid, s.query
FROM {schema}.pg_stat_statements(true) s
WHERE (s.userid::bigint, s.dbid::bigint, s.queryid) IN
      (SELECT * FROM unnest(%(userids)s::bigint[], %(dbids)s::bigint[], %(queryids)s::bigint[]))
"""


@dataclass(frozen=True)
class Counters:
    """One statement's cumulative counters (or their increase over a window)."""

    calls: float
    seconds: float
    rows: float
    blks_read: float
    read_seconds: float
    temp_blks_written: float
    top_calls: float  # top-level only: what the instance totals add up
    top_seconds: float
    top_rows: float

    def minus(self, earlier: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(astuple(self), astuple(earlier))))


_COUNTER_FIELDS = tuple(f.name for f in fields(Counters))

#: the rankings whose tops are unioned; each maps a window to how much of it the statement took.
CRITERIA: Mapping[str, Callable[[Counters], float]] = {
    "total_time": lambda w: w.seconds,
    "calls": lambda w: w.calls,
    "mean_time": lambda w: w.seconds / w.calls if w.calls > 0 else 0.0,
    "blocks_read": lambda w: w.blks_read,
    "temp": lambda w: w.temp_blks_written,
}


def window(current: Mapping[Key, Counters], previous: Mapping[Key, Counters]) -> dict[Key, Counters]:
    """Each statement's increase since ``previous``; all of it for new or reset statements.

    A statement is one or two entries of pg_stat_statements (top-level and nested) summed, and
    either can be evicted on its own: any counter going down means a reset, not only ``calls``
    (else the other entry's growth could hide it, and a negative window would take the instance
    totals backwards).
    """
    out = {}
    for key, now in current.items():
        before = previous.get(key)
        if before is None or any(a < b for a, b in zip(astuple(now), astuple(before))):
            out[key] = now
        else:
            out[key] = now.minus(before)
    return out


def _top(windows: Mapping[Key, Counters], rank: Callable[[Counters], float], n: int) -> list[Key]:
    """The ``n`` statements that took the most of ``rank`` in the window (ties by key: stable)."""
    scored = [(-rank(w), key) for key, w in windows.items() if rank(w) > 0]
    return [key for _, key in heapq.nsmallest(n, scored)]


def choose(windows: Mapping[Key, Counters], sticky: Mapping[Key, int], limit: int) -> dict[Key, int]:
    """The statements to export, each with how many more windows it stays if it leaves the tops.

    Fresh picks (the union of the top ``limit // 10`` of each criterion, at least 1) come first,
    taken round-robin across the criteria so that a small ``limit`` still covers all of them;
    the remaining budget keeps earlier picks that still exist, most recently chosen first.
    """
    per = max(1, limit // (2 * len(CRITERIA)))
    rankings = [_top(windows, rank, per) for rank in CRITERIA.values()]
    chosen: dict[Key, int] = {}
    for position in range(per):
        for ranking in rankings:
            if position < len(ranking) and len(chosen) < limit:
                chosen.setdefault(ranking[position], STICKY_WINDOWS)
    for key, left in sorted(sticky.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(chosen) >= limit:
            break
        if key not in chosen and left > 0 and key in windows:
            chosen[key] = left - 1
    return chosen


@dataclass(frozen=True)
class _Statement:
    user: str
    datname: str
    counters: Counters


class StatementsCollector(Collector[PostgresSource]):
    name = "statements"
    tier = Tier.SLOW

    def __init__(self) -> None:
        self._previous: dict[Key, Counters] = {}
        self._sticky: dict[Key, int] = {}
        self._texts: dict[Key, str] = {}
        self._commands: dict[Key, str] = {}
        self._totals = [0.0, 0.0, 0.0]  # calls, seconds, rows of top-level statements, monotonic

    def collect(self, source: PostgresSource) -> list[Metric]:
        schema, columns = self._extension(source)
        statements = self._read(source, schema, columns)
        current = {key: s.counters for key, s in statements.items()}
        windows = window(current, self._previous)
        self._previous = current
        for w in windows.values():
            self._totals[0] += w.top_calls
            self._totals[1] += w.top_seconds
            self._totals[2] += w.top_rows
        self._sticky = choose(windows, self._sticky, source.options.statements_top_n)
        self._fetch_texts(source, schema, source.options.query_text_max_bytes)
        options = source.options
        slow = sum(1 for key in self._sticky
                   if self._command(key) not in UNJUDGED_COMMANDS
                   and windows[key].calls >= options.slow_statement_min_calls
                   and windows[key].seconds / windows[key].calls > options.slow_statement_seconds)
        return self._families(statements, slow)

    def _command(self, key: Key) -> str:
        return self._commands.get(key, "other")

    # -- queries ------------------------------------------------------------------------
    @staticmethod
    def _extension(source: PostgresSource) -> tuple[str, set[str]]:
        if source.preloaded("pg_stat_statements") is False:  # None: hidden from this role; try the view
            raise CollectorDisabled("extension_missing")
        found = source.rows(EXTENSION_SQL)
        if not found:
            raise CollectorDisabled("extension_not_created")
        return found[0]["schema"], set(found[0]["columns"])

    def _read(self, source: PostgresSource, schema: str, columns: set[str]) -> dict[Key, _Statement]:
        query = sql.SQL(COUNTERS_SQL).format(
            schema=sql.Identifier(schema),
            time=sql.Identifier("total_exec_time" if "total_exec_time" in columns else "total_time"),
            read_time=sql.Identifier("shared_blk_read_time" if "shared_blk_read_time" in columns
                                     else "blk_read_time"),
            toplevel=sql.SQL("s.toplevel" if "toplevel" in columns else "true"),
        )
        return {
            (r["userid"], r["dbid"], r["queryid"]): _Statement(
                r["usename"], r["datname"], Counters(*(r[f] for f in _COUNTER_FIELDS)))
            for r in source.rows(query.as_string(source.conn))
        }

    def _fetch_texts(self, source: PostgresSource, schema: str, max_bytes: int) -> None:
        """Cache the normalized text and the command of newly chosen statements; forget those no
        longer chosen."""
        self._texts = {k: t for k, t in self._texts.items() if k in self._sticky}
        self._commands = {k: c for k, c in self._commands.items() if k in self._texts}
        missing = [k for k in self._sticky if k not in self._texts]
        if not missing:
            return
        query = sql.SQL(TEXTS_SQL).format(schema=sql.Identifier(schema))
        params = {"userids": [k[0] for k in missing], "dbids": [k[1] for k in missing],
                  "queryids": [k[2] for k in missing]}
        try:
            rows = source.rows(query.as_string(source.conn), params)
        except psycopg.errors.QueryCanceled as error:  # the counters are read; try the texts next poll
            log.warning("pg_stat_statements texts not read: %s", str(error).strip())
            return
        monitoring = {r["userid"] for r in source.rows(MONITORING_ROLES_SQL)}
        for r in rows:
            key = (r["userid"], r["dbid"], r["queryid"])
            self._texts[key] = normalize_query(r["query"] or "", max_bytes)
            self._commands[key] = classify(r["query"] or "", r["userid"] in monitoring)

    # -- families -----------------------------------------------------------------------
    def _families(self, statements: Mapping[Key, _Statement], slow: int) -> list[Metric]:
        labels = ["user", "datname", "queryid", "command"]
        instance = [
            counter("pg_stat_statements_instance_calls_total", "Calls of all top-level statements."),
            counter("pg_stat_statements_instance_seconds_total", "Execution time of all top-level statements."),
            counter("pg_stat_statements_instance_rows_total", "Rows returned or affected by all top-level statements."),
        ]
        for family, total in zip(instance, self._totals):
            family.add_metric([], total)
        count = gauge("pg_stat_statements_entries", "Distinct statements tracked by pg_stat_statements.")
        count.add_metric([], len(statements))
        slow_count = gauge("pg_stat_statements_slow_statements",
                           "Exported application statements (not utility or monitoring) called at least the "
                           "minimum number of times in the last window whose mean time there exceeded the "
                           "slow threshold.")
        slow_count.add_metric([], slow)
        per = {
            "calls": counter("pg_stat_statements_calls_total", "Times the statement was executed.", labels),
            "seconds": counter("pg_stat_statements_seconds_total", "Total execution time of the statement.", labels),
            "rows": counter("pg_stat_statements_rows_total", "Rows retrieved or affected by the statement.", labels),
            "read_seconds": counter("pg_stat_statements_block_read_seconds_total",
                                    "Time the statement spent reading shared blocks (track_io_timing).", labels),
            "blks_read": counter("pg_stat_statements_shared_blks_read_total",
                                 "Shared blocks the statement read from disk or OS cache.", labels),
            "temp_blks_written": counter("pg_stat_statements_temp_blks_written_total",
                                         "Temp blocks the statement wrote (work_mem too small).", labels),
        }
        mean = gauge("pg_stat_statements_mean_seconds",
                     "Mean execution time of the statement since its statistics were reset.", labels)
        texts = info("pg_stat_statements_query", "Normalized text of an exported statement.",
                     ["queryid", "datname", "user"])
        for key in self._sticky:
            statement = statements[key]
            values = [statement.user, statement.datname, str(key[2]), self._command(key)]
            c = statement.counters
            for field, family in per.items():
                family.add_metric(values, getattr(c, field))
            mean.add_metric(values, c.seconds / c.calls if c.calls else 0.0)
            if key in self._texts:
                texts.add_metric([str(key[2]), statement.datname, statement.user], {"query": self._texts[key]})
        return [*instance, count, slow_count, *per.values(), mean, texts]
