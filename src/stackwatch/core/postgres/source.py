"""What a PostgreSQL collector gets to work with on each poll."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from stackwatch import thresholds
from stackwatch.core.option_fields import option
from stackwatch.core.options import positive_int, regex

from . import connection
from .commands import marked

__all__ = ["PostgresOptions", "PostgresSource"]

_LIBRARY_SUFFIX = re.compile(r"\.(?:so|dylib|dll)$")


def _connection(statement_timeout_ms: int) -> connection.ConnectionSettings:
    return connection.ConnectionSettings(statement_timeout_ms=statement_timeout_ms)


@dataclass(frozen=True)
class PostgresOptions:
    """Knobs of the PostgreSQL collectors, each declared once with its flag and environment twin."""

    top_n: int = option("--pg-top-n", "STACKWATCH_PG_TOP_N",
                        "tables/indexes exported per instance before the `other` rollup",
                        default=50, parse=positive_int, metavar="N")
    statements_top_n: int = option(
        "--pg-statements-top-n", "STACKWATCH_PG_STATEMENTS_TOP_N",
        "statements exported per instance (sticky union of the tops by time, calls, mean, reads, temp)",
        default=100, parse=positive_int, metavar="N")
    slow_statement_seconds: float = option(
        "--pg-slow-statement-seconds", "STACKWATCH_PG_SLOW_STATEMENT_SECONDS",
        "mean execution time above which a statement counts as slow",
        default=thresholds.POSTGRES.slow_statement_mean_seconds, parse=float, metavar="SECONDS")
    slow_statement_min_calls: int = option(
        "--pg-slow-statement-min-calls", "STACKWATCH_PG_SLOW_STATEMENT_MIN_CALLS",
        "calls in a window below which a statement is a one-off, never counted as slow",
        default=thresholds.POSTGRES.slow_statement_min_calls, parse=positive_int, metavar="N")
    query_text_max_bytes: int = option(
        "--pg-query-text-max-bytes", "STACKWATCH_PG_QUERY_TEXT_MAX_BYTES",
        "longest normalized statement text exported in pg_stat_statements_query_info (cut on a UTF-8 boundary)",
        default=512, parse=positive_int, metavar="BYTES")
    include_databases: re.Pattern[str] | None = option(
        "--pg-include-databases", "STACKWATCH_PG_INCLUDE_DATABASES",
        "regex of databases whose tables and indexes are collected", parse=regex, metavar="REGEX")
    exclude_databases: re.Pattern[str] | None = option(
        "--pg-exclude-databases", "STACKWATCH_PG_EXCLUDE_DATABASES", "regex of databases to skip",
        parse=regex, metavar="REGEX")
    connection: connection.ConnectionSettings = option(
        "--pg-statement-timeout-ms", "STACKWATCH_PG_STATEMENT_TIMEOUT_MS", "statement_timeout of every exporter query",
        default=connection.ConnectionSettings.statement_timeout_ms, parse=positive_int, metavar="MS",
        convert=_connection)

    def wants_database(self, name: str) -> bool:
        if self.include_databases is not None and not self.include_databases.search(name):
            return False
        return not (self.exclude_databases is not None and self.exclude_databases.search(name))


@dataclass
class PostgresSource:
    """The live connection, the server version and the per-database connection factory."""

    conn: psycopg.Connection
    dsn: str
    version: int  # server_version_num, e.g. 150004
    options: PostgresOptions

    def rows(self, query: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
        """Run ``query`` (marked as stackwatch's) on the long-lived connection; rows as dicts."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(marked(query) if isinstance(query, str) else sql.SQL(marked("")) + query, params)
            return cur.fetchall()

    def preloaded(self, library: str) -> bool | None:
        """Whether ``library`` is in ``shared_preload_libraries`` (a list item, not a substring;
        given by name or by path, ``$libdir/pg_stat_statements`` or ``...pg_stat_statements.so``);
        None when the role may not read that setting (it needs ``pg_read_all_settings``)."""
        found = self.rows("SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'")
        if not found:  # pg_settings hides superuser-only settings instead of raising
            return None
        names = {_LIBRARY_SUFFIX.sub("", item.strip().strip('"').rsplit("/", 1)[-1])
                 for item in found[0]["setting"].split(",")}
        return library in names

    def databases(self) -> list[str]:
        """Databases that accept connections and pass the include/exclude filters."""
        names = [r["datname"] for r in self.rows(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")]
        return [n for n in names if self.options.wants_database(n)]

    @contextmanager
    def database(self, dbname: str) -> Iterator[psycopg.Connection]:
        """A short-lived connection to ``dbname`` (the DSN's own database reuses ``conn``)."""
        if dbname == self.conn.info.dbname:
            yield self.conn
            return
        with connection.database(self.dsn, self.options.connection, dbname) as conn:
            yield conn
