"""The PostgreSQL exporter: one collector per concern, declared in :data:`COLLECTORS`.

Each collector file holds its version-aware SQL next to the code that turns rows into
families, so the SQL behind any metric is found from its collector's name; a query that
``stackwatch check`` makes too lives in :mod:`stackwatch.core.postgres` (activity, tables,
indexes, settings), imported from there by its collector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stackwatch import thresholds
from stackwatch.core.options import Option, OptionError, positive_int, regex
from stackwatch.core.postgres.connection import ConnectionSettings, InvalidDSN, checked_dsn, parse_dsn
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.core.redact import redact

from ..collector import Collector
from ..kinds import Common, select_collectors
from ..target import Target
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


OPTIONS: Sequence[Option] = (
    Option("--postgres-dsn", "STACKWATCH_POSTGRES_DSN",
           "PostgreSQL DSN to monitor (URL or key=value); several are separated by newlines",
           repeat=True, secret=True, parse=checked_dsn, metavar="DSN"),
    Option("--pg-top-n", "STACKWATCH_PG_TOP_N", "tables/indexes exported per instance before the `other` rollup",
           default=50, parse=positive_int, metavar="N"),
    Option("--pg-statements-top-n", "STACKWATCH_PG_STATEMENTS_TOP_N",
           "statements exported per instance (sticky union of the tops by time, calls, mean, reads, temp)",
           default=100, parse=positive_int, metavar="N"),
    Option("--pg-slow-statement-seconds", "STACKWATCH_PG_SLOW_STATEMENT_SECONDS",
           "mean execution time above which a statement counts as slow",
           default=thresholds.POSTGRES.slow_statement_mean_seconds, parse=float, metavar="SECONDS"),
    Option("--pg-slow-statement-min-calls", "STACKWATCH_PG_SLOW_STATEMENT_MIN_CALLS",
           "calls in a window below which a statement is a one-off, never counted as slow",
           default=thresholds.POSTGRES.slow_statement_min_calls, parse=positive_int, metavar="N"),
    Option("--pg-query-text-max-bytes", "STACKWATCH_PG_QUERY_TEXT_MAX_BYTES",
           "longest normalized statement text exported in pg_stat_statements_query_info (cut on a UTF-8 boundary)",
           default=512, parse=positive_int, metavar="BYTES"),
    Option("--pg-include-databases", "STACKWATCH_PG_INCLUDE_DATABASES",
           "regex of databases whose tables and indexes are collected", parse=regex, metavar="REGEX"),
    Option("--pg-exclude-databases", "STACKWATCH_PG_EXCLUDE_DATABASES",
           "regex of databases to skip", parse=regex, metavar="REGEX"),
    Option("--pg-statement-timeout-ms", "STACKWATCH_PG_STATEMENT_TIMEOUT_MS",
           "statement_timeout of every exporter query", default=5000, parse=positive_int, metavar="MS"),
)


def target_name(dsn: str) -> str:
    """``host:port/dbname`` of a DSN: a readable target name that carries no secret."""
    params = parse_dsn(dsn)
    host = params.get("host", "localhost")
    return f"{host}:{params.get('port', '5432')}/{params.get('dbname', params.get('user', 'postgres'))}"


class _PostgresKind:
    prefix = "pg"
    title = "PostgreSQL"
    options = OPTIONS
    collectors = COLLECTORS
    targets_file_key = "postgres_dsn"

    def _options(self, values: Mapping[str, Any]) -> PostgresOptions:
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

    def _target(self, name: str, dsn: str, common: Common, options: PostgresOptions) -> PostgresTarget:
        collectors = [cls() for cls in select_collectors(self, common)]
        return PostgresTarget(name, dsn, collectors, common.intervals, options)

    def targets(self, values: Mapping[str, Any], common: Common) -> list[Target[Any]]:
        options = self._options(values)
        return [self._target(target_name(dsn), dsn, common, options) for dsn in values.get("postgres_dsn") or []]

    def probe_target(self, name: str, entry: Mapping[str, Any], values: Mapping[str, Any],
                     common: Common) -> Target[Any] | None:
        if self.targets_file_key not in entry:
            return None
        dsn = str(entry[self.targets_file_key])
        try:
            parse_dsn(dsn)
        except InvalidDSN as error:
            raise OptionError(f"targets file, target {name!r}: {error} ({redact(dsn)})") from None
        return self._target(name, dsn, common, self._options(values))


KIND = _PostgresKind()
