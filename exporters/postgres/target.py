"""A PostgreSQL instance as an exporter target: one long-lived connection, reconnect on loss."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from ..collector import Collector, Intervals
from ..redact import redact
from ..target import Target
from . import connection
from .source import PostgresOptions, PostgresSource

__all__ = ["PostgresTarget"]


class PostgresTarget(Target[PostgresSource]):
    prefix = "pg"

    def __init__(self, name: str, dsn: str, collectors: Sequence[Collector[PostgresSource]],
                 intervals: Intervals, options: PostgresOptions) -> None:
        connection.parse_dsn(dsn)  # fail fast on a malformed DSN, before any thread starts
        super().__init__(name, collectors, intervals)
        self.dsn = dsn
        self.options = options
        self._source: PostgresSource | None = None

    def connect(self) -> PostgresSource:
        if self._source is not None and not self._source.conn.closed:
            return self._source
        conn = connection.connect(self.dsn, self.options.connection)
        self._source = PostgresSource(conn=conn, dsn=self.dsn, version=conn.info.server_version,
                                      options=self.options)
        return self._source

    def disconnect(self) -> None:
        if self._source is not None:
            try:
                self._source.conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone anyway
                pass
            self._source = None

    def classify_error(self, error: BaseException) -> str:
        if isinstance(error, connection.InvalidDSN):
            return "invalid_dsn"
        text = str(error).lower()
        if "password authentication failed" in text or "no password supplied" in text or \
                "authentication failed" in text or "pg_hba.conf" in text:
            return "authentication"
        if "does not exist" in text:
            return "database_missing"
        if "permission denied" in text:
            return "permission"
        if isinstance(error, psycopg.OperationalError):
            return "unreachable"
        return "error"

    def is_connection_lost(self, error: BaseException) -> bool:
        conn = self._source.conn if self._source is not None else None
        return conn is None or conn.closed or conn.broken

    def describe_target(self) -> dict[str, object]:
        return {**super().describe_target(), "dsn": redact(self.dsn)}
