"""A PostgreSQL instance as an exporter target: a connection per tier, reconnect on loss."""

from __future__ import annotations

from stackwatch.core.postgres import connection
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource

from ..target import ConnectedTarget

__all__ = ["PostgresTarget"]


class PostgresTarget(ConnectedTarget[PostgresSource, PostgresOptions]):
    prefix = "pg"
    address_key = "dsn"

    @staticmethod
    def check_address(address: str) -> None:
        connection.parse_dsn(address)

    def open(self) -> PostgresSource:
        conn = connection.connect(self.address, self.options.connection)
        return PostgresSource(conn=conn, dsn=self.address, version=conn.info.server_version, options=self.options)

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
