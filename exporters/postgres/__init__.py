"""The PostgreSQL exporter: one collector per concern, declared in :data:`COLLECTORS`.

Each collector file holds its version-aware SQL next to the code that turns rows into
families, so the SQL behind any metric is found from its collector's name; a query that
``stackwatch check`` makes too lives in :mod:`stackwatch.core.postgres` (activity, tables,
indexes, settings), imported from there by its collector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stackwatch.core.options import Option, positive_int, regex
from stackwatch.core.postgres.connection import ConnectionSettings, InvalidDSN, checked_dsn, parse_dsn
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.core.redact import redact

from ..collector import Collector
from ..kinds import Common, ConnectedKind
from .activity import ActivityCollector
from .archiver import ArchiverCollector
from .checkpointer import CheckpointerCollector
from .database import DatabaseCollector, DatabaseSizeCollector
from .indexes import IndexesCollector
from .locks import LocksCollector
from .progress_vacuum import ProgressVacuumCollector
from .replication import ReplicationCollector
from .settings import SettingsCollector
from .statements import StatementsCollector
from .tables import TablesCollector
from .target import PostgresTarget
from .wal import WalCollector

__all__ = ["KIND", "COLLECTORS", "PostgresTarget", "PostgresOptions"]

#: Every PostgreSQL collector and whether it runs by default (``default_enabled`` on the class).
COLLECTORS: Sequence[type[Collector[PostgresSource]]] = (
    SettingsCollector,
    ActivityCollector,
    DatabaseCollector,
    DatabaseSizeCollector,
    LocksCollector,
    ReplicationCollector,
    ArchiverCollector,
    WalCollector,
    ProgressVacuumCollector,
    CheckpointerCollector,
    StatementsCollector,
    TablesCollector,
    IndexesCollector,
)


#: the collectors' knobs as the dataclass declares them: every default below is written there once
_DEFAULT = PostgresOptions()

OPTIONS: Sequence[Option] = (
    Option("--postgres-dsn", "STACKWATCH_POSTGRES_DSN",
           "PostgreSQL DSN to monitor (URL or key=value); several are separated by newlines",
           repeat=True, secret=True, parse=checked_dsn, metavar="DSN"),
    Option("--pg-top-n", "STACKWATCH_PG_TOP_N", "tables/indexes exported per instance before the `other` rollup",
           default=_DEFAULT.top_n, parse=positive_int, metavar="N"),
    Option("--pg-statements-top-n", "STACKWATCH_PG_STATEMENTS_TOP_N",
           "statements exported per instance (sticky union of the tops by time, calls, mean, reads, temp)",
           default=_DEFAULT.statements_top_n, parse=positive_int, metavar="N"),
    Option("--pg-slow-statement-seconds", "STACKWATCH_PG_SLOW_STATEMENT_SECONDS",
           "mean execution time above which a statement counts as slow",
           default=_DEFAULT.slow_statement_seconds, parse=float, metavar="SECONDS"),
    Option("--pg-slow-statement-min-calls", "STACKWATCH_PG_SLOW_STATEMENT_MIN_CALLS",
           "calls in a window below which a statement is a one-off, never counted as slow",
           default=_DEFAULT.slow_statement_min_calls, parse=positive_int, metavar="N"),
    Option("--pg-query-text-max-bytes", "STACKWATCH_PG_QUERY_TEXT_MAX_BYTES",
           "longest normalized statement text exported in pg_stat_statements_query_info (cut on a UTF-8 boundary)",
           default=_DEFAULT.query_text_max_bytes, parse=positive_int, metavar="BYTES"),
    Option("--pg-include-databases", "STACKWATCH_PG_INCLUDE_DATABASES",
           "regex of databases whose tables and indexes are collected", parse=regex, metavar="REGEX"),
    Option("--pg-exclude-databases", "STACKWATCH_PG_EXCLUDE_DATABASES",
           "regex of databases to skip", parse=regex, metavar="REGEX"),
    Option("--pg-statement-timeout-ms", "STACKWATCH_PG_STATEMENT_TIMEOUT_MS",
           "statement_timeout of every exporter query", default=_DEFAULT.connection.statement_timeout_ms,
           parse=positive_int, metavar="MS"),
)


def target_name(dsn: str) -> str:
    """``host:port/dbname`` of a DSN: a readable target name that carries no secret."""
    params = parse_dsn(dsn)
    host = params.get("host", "localhost")
    return f"{host}:{params.get('port', '5432')}/{params.get('dbname', params.get('user', 'postgres'))}"


class _PostgresKind(ConnectedKind[PostgresOptions]):
    prefix = "pg"
    title = "PostgreSQL"
    options = OPTIONS
    collectors = COLLECTORS
    targets_file_key = "postgres_dsn"

    def check_address(self, address: str) -> None:
        try:
            parse_dsn(address)
        except InvalidDSN as error:
            raise ValueError(f"{error} ({redact(address)})") from None

    def target_name(self, address: str) -> str:
        return target_name(address)

    def kind_options(self, values: Mapping[str, Any]) -> PostgresOptions:
        return PostgresOptions(
            top_n=values["pg_top_n"],
            statements_top_n=values["pg_statements_top_n"],
            slow_statement_seconds=values["pg_slow_statement_seconds"],
            slow_statement_min_calls=values["pg_slow_statement_min_calls"],
            query_text_max_bytes=values["pg_query_text_max_bytes"],
            include_databases=values["pg_include_databases"],
            exclude_databases=values["pg_exclude_databases"],
            connection=ConnectionSettings(statement_timeout_ms=values["pg_statement_timeout_ms"]),
        )

    def new_target(self, name: str, address: str, collectors: list[Collector[Any]], common: Common,
                   options: PostgresOptions) -> PostgresTarget:
        return PostgresTarget(name, address, collectors, common.intervals, options)


KIND = _PostgresKind()
