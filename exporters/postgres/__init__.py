"""The PostgreSQL exporter: one collector per concern, declared in :data:`COLLECTORS`.

Each collector file holds its version-aware SQL next to the code that turns rows into
families, so the SQL behind any metric is found from its collector's name; a query that
``stackwatch check`` makes too lives in :mod:`stackwatch.core.postgres` (activity, tables,
indexes, settings), imported from there by its collector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackwatch.core.options import Option
from stackwatch.core.postgres.connection import InvalidDSN, checked_dsn, parse_dsn
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

__all__ = ["ADDRESS", "KIND", "COLLECTORS", "PostgresTarget", "PostgresOptions"]

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


#: the addresses to monitor; every other option is declared on a field of :class:`PostgresOptions`
ADDRESS = Option("--postgres-dsn", "STACKWATCH_POSTGRES_DSN",
                 "PostgreSQL DSN to monitor (URL or key=value); several are separated by newlines",
                 repeat=True, secret=True, parse=checked_dsn, metavar="DSN")


def target_name(dsn: str) -> str:
    """``host:port/dbname`` of a DSN: a readable target name that carries no secret."""
    params = parse_dsn(dsn)
    host = params.get("host", "localhost")
    return f"{host}:{params.get('port', '5432')}/{params.get('dbname', params.get('user', 'postgres'))}"


class _PostgresKind(ConnectedKind[PostgresOptions]):
    prefix = "pg"
    title = "PostgreSQL"
    address = ADDRESS
    settings = PostgresOptions
    collectors = COLLECTORS

    def check_address(self, address: str) -> None:
        try:
            parse_dsn(address)
        except InvalidDSN as error:
            raise ValueError(f"{error} ({redact(address)})") from None

    def target_name(self, address: str) -> str:
        return target_name(address)

    def new_target(self, name: str, address: str, collectors: list[Collector[Any]], common: Common,
                   options: PostgresOptions) -> PostgresTarget:
        return PostgresTarget(name, address, collectors, common.intervals, options)


KIND = _PostgresKind()
