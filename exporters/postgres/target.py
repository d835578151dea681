"""A PostgreSQL instance as an exporter target: a connection per tier, reconnect on loss."""

from __future__ import annotations

from collections.abc import Sequence

from stackwatch.core.postgres import connection
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.core.redact import redact

from ..collector import Collector, Intervals
from ..target import Target

__all__ = ["PostgresTarget"]


class PostgresTarget(Target[PostgresSource]):
    prefix = "pg"

    def __init__(self, name: str, dsn: str, collectors: Sequence[Collector[PostgresSource]],
                 intervals: Intervals, options: PostgresOptions) -> None:
        connection.parse_dsn(dsn)  # fail fast on a malformed DSN, before any thread starts
        super().__init__(name, collectors, intervals)
        self.dsn = dsn
        self.options = options

    def open(self) -> PostgresSource:
        conn = connection.connect(self.dsn, self.options.connection)
        return PostgresSource(conn=conn, dsn=self.dsn, version=conn.info.server_version, options=self.options)

    def close_source(self, source: PostgresSource) -> None:
        source.conn.close()

    def reusable(self, source: PostgresSource) -> bool:
        return not source.conn.closed and not source.conn.broken

    def classify_error(self, error: BaseException) -> str:
        return connection.classify_error(error)

    def lost_reason(self, error: BaseException | None) -> str:
        return connection.lost_reason(error)

    def is_connection_lost(self, error: BaseException, source: PostgresSource) -> bool:
        return source.conn.closed or source.conn.broken

    def describe_target(self) -> dict[str, object]:
        return {**super().describe_target(), "dsn": redact(self.dsn)}
