"""Connections to one PostgreSQL instance: the long-lived one, and short per-database ones.

Every connection is autocommit, read-only by intent, tagged ``application_name=stackwatch``
and bounded by ``statement_timeout``/``lock_timeout`` so a collector can never hang a poll or
queue behind DDL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["ConnectionSettings", "connect", "parse_dsn", "checked_dsn", "InvalidDSN"]


class InvalidDSN(ValueError):
    """The DSN could not be parsed (the message never contains the password)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Timeouts applied to every exporter connection."""

    connect_timeout: float = 5.0
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 100


def parse_dsn(dsn: str) -> dict[str, str]:
    """Parse a URL or key/value DSN, raising :class:`InvalidDSN` without echoing secrets."""
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except psycopg.ProgrammingError as error:
        raise InvalidDSN(f"invalid PostgreSQL DSN: {_strip_secret(str(error))}") from None


def checked_dsn(dsn: str) -> str:
    """``dsn`` itself once it parses: the option parser of every ``--postgres-dsn``."""
    parse_dsn(dsn)
    return dsn


def _strip_secret(message: str) -> str:
    from ..redact import redact_text

    return redact_text(message).splitlines()[0] if message else "unparseable"


def connect(dsn: str, settings: ConnectionSettings, dbname: str | None = None) -> psycopg.Connection:
    """Open an autocommit connection with the exporter's identity and timeouts."""
    params = parse_dsn(dsn)
    if dbname is not None:
        params["dbname"] = dbname
    params.setdefault("application_name", "stackwatch")
    params["connect_timeout"] = str(max(1, int(settings.connect_timeout)))
    conn = psycopg.connect(make_conninfo(**params), autocommit=True)
    # SET rather than startup options: pg_settings.reset_val keeps the server's own values, which
    # the settings collector reports, while this session runs with the exporter's bounds.
    conn.execute(f"SET statement_timeout = {int(settings.statement_timeout_ms)}")
    conn.execute(f"SET lock_timeout = {int(settings.lock_timeout_ms)}")
    return conn


@contextmanager
def database(dsn: str, settings: ConnectionSettings, dbname: str) -> Iterator[psycopg.Connection]:
    """A short-lived connection to another database of the same instance."""
    conn = connect(dsn, settings, dbname)
    try:
        yield conn
    finally:
        conn.close()
