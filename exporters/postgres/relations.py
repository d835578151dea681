"""What the per-relation collectors (tables, indexes) share: every database, no waiting, bounded.

* :func:`rows_per_database` runs one query in each database the options select, on a
  short-lived connection each (one at a time), retrying once when a DDL lock raced the query.
  A database it cannot read (no CONNECT privilege, a statement timeout...) is skipped, and
  :meth:`PerDatabase.skipped_family` exports which and why (``pg_database_skipped``) and marks
  the collector degraded, logged once rather than on every poll.
* the queries leave out the tables a DDL lock blocks
  (:data:`stackwatch.core.postgres.relations.BLOCKED_TABLES`).
* :func:`split_top` and :func:`rollup` bound a per-object family to the top N of the
  instance plus one ``schemaname="pg_other", relname="other"`` row per database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client.core import Metric
from psycopg.rows import dict_row

from stackwatch.core.postgres import connection
from stackwatch.core.postgres.commands import marked
from stackwatch.core.postgres.relations import Row
from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector
from ..families import gauge

__all__ = ["OTHER", "OTHER_SCHEMA", "PerDatabase", "rollup", "rows_per_database", "split_top"]

#: ``schemaname`` of the per-database rollup of the objects past the top N. PostgreSQL reserves
#: schema names starting with ``pg_`` (CREATE SCHEMA refuses them), so no real table is in it
#: and the rollup can never collide with a real ``other.other`` table.
OTHER_SCHEMA = "pg_other"
#: ``relname`` of that rollup.
OTHER = "other"


@dataclass
class PerDatabase:
    """What :func:`rows_per_database` read: the rows, the databases read, and those skipped."""

    rows: list[Row] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    #: database -> why it was skipped (a fixed word: ``permission``, ``statement_timeout``...)
    skipped: dict[str, str] = field(default_factory=dict)

    def skipped_family(self, collector: Collector[Any], limit: int) -> Metric:
        """``pg_database_skipped{collector,datname,reason}`` for the first ``limit`` skipped
        databases by name; any skip also marks ``collector`` degraded (logged once)."""
        family = gauge("pg_database_skipped", "1 for a database the collector could not read this poll, "
                       "with why (the first N by name).", ["collector", "datname", "reason"])
        names = sorted(self.skipped)
        for name in names[:limit]:
            family.add_metric([collector.name, name, self.skipped[name]], 1)
        if names:
            shown = ", ".join(f"{name} ({self.skipped[name]})" for name in names[:10])
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            collector.degrade("databases_skipped", f"{len(names)} database(s) skipped: {shown}{more}; "
                              "grant CONNECT on them to the exporter's role, raise --pg-statement-timeout-ms, "
                              "or leave them out with --pg-exclude-databases")
        return family


def rows_per_database(source: PostgresSource, sql: str) -> PerDatabase:
    """Rows of ``sql`` from every selected database (each row should carry its ``datname``).

    A database that cannot be read (no CONNECT privilege, a statement timeout, dropped
    meanwhile...) is skipped so the others still report; if none can be read the last error is
    raised.
    """
    result = PerDatabase()
    error: psycopg.Error | None = None
    for name in source.databases():
        try:
            with source.database(name) as conn:
                result.rows.extend(_query(conn, sql))
            result.read.append(name)
        except psycopg.Error as failure:
            if source.conn.broken:
                raise
            error = failure
            result.skipped[name] = _skip_reason(failure)
    if error is not None and not result.read:
        raise error
    return result


def _skip_reason(error: psycopg.Error) -> str:
    """Why a database was skipped, as a fixed word."""
    if isinstance(error, psycopg.errors.QueryCanceled):
        return "statement_timeout"
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return "lock_timeout"
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        return "permission"
    return connection.classify_error(error)


def _query(conn: psycopg.Connection, sql: str) -> list[Row]:
    try:
        return _fetch(conn, sql)
    except psycopg.errors.LockNotAvailable:
        return _fetch(conn, sql)  # the retry sees the new lock in pg_locks and skips that table


def _fetch(conn: psycopg.Connection, sql: str) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(marked(sql))
        return cur.fetchall()


def _identity(row: Row) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in ("datname", "schemaname", "relname", "indexrelname"))


def split_top(rows: Iterable[Row], n: int, key: Callable[[Row], float]) -> tuple[list[Row], list[Row]]:
    """The ``n`` rows with the highest ``key`` (ties by name, so the choice is stable) and the rest."""
    ordered = sorted(rows, key=lambda r: (-key(r), _identity(r)))
    return ordered[:n], ordered[n:]


def rollup(rest: Iterable[Row], sums: Sequence[str], maxima: Sequence[str]) -> list[Row]:
    """One ``pg_other.other`` row per database: ``sums`` added up, ``maxima`` the largest non-null."""
    out: dict[str, Row] = {}
    for row in rest:
        acc = out.setdefault(row["datname"], {
            "datname": row["datname"], "schemaname": OTHER_SCHEMA, "relname": OTHER,
            **{f: 0.0 for f in sums}, **{f: None for f in maxima}})
        for f in sums:
            acc[f] += float(row[f] or 0)
        for f in maxima:
            if row[f] is not None and (acc[f] is None or float(row[f]) > acc[f]):
                acc[f] = float(row[f])
    return list(out.values())
