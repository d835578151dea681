"""What a PostgreSQL collector gets to work with on each poll."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from stackwatch import thresholds

from . import connection
from .commands import marked

__all__ = ["PostgresOptions", "PostgresSource"]

_LIBRARY_SUFFIX = re.compile(r"\.(?:so|dylib|dll)$")


@dataclass(frozen=True)
class PostgresOptions:
    """Knobs of the PostgreSQL collectors (all have CLI flags and environment twins)."""

    top_n: int = 50
    statements_top_n: int = 100
    slow_statement_seconds: float = thresholds.POSTGRES.slow_statement_mean_seconds
    slow_statement_min_calls: int = thresholds.POSTGRES.slow_statement_min_calls
    query_text_max_bytes: int = 512
    include_databases: re.Pattern[str] | None = None
    exclude_databases: re.Pattern[str] | None = None
    connection: connection.ConnectionSettings = field(default_factory=connection.ConnectionSettings)

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
