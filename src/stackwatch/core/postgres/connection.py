"""Connections to one PostgreSQL instance: the long-lived one, and short per-database ones.

Every connection is autocommit, read-only by intent, tagged ``application_name=stackwatch``
and bounded by ``statement_timeout``/``lock_timeout`` so a collector can never hang a poll or
queue behind DDL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stackwatch.core.options import SafeValueError

from .commands import marked

__all__ = ["ConnectionSettings", "InvalidDSN", "checked_dsn", "classify_error", "connect", "lost_reason", "parse_dsn"]


class InvalidDSN(SafeValueError):
    """The DSN could not be parsed (the message never contains the password)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Timeouts applied to every exporter connection."""

    connect_timeout: float = 5.0
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 100


def parse_dsn(dsn: str) -> dict[str, str]:
    """Parse a URL or key/value DSN, raising :class:`InvalidDSN` without echoing secrets.

    In a URL the user information ends at the authority's last ``@`` (as in postgres_exporter
    and RFC 3986 parsers), so an unencoded ``@`` in a password stays in the password; libpq
    alone would split at the first one and take the rest of the password for the host.
    """
    try:
        return {k: str(v) for k, v in conninfo_to_dict(_encode_userinfo_at(dsn)).items()}
    except psycopg.ProgrammingError as error:
        raise InvalidDSN(f"invalid PostgreSQL DSN: {_strip_secret(str(error), dsn)}") from None


def _encode_userinfo_at(dsn: str) -> str:
    """A URL DSN with every ``@`` but the authority's last one percent-encoded."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        return dsn
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")
    if "@" not in userinfo:
        return dsn
    return f"{scheme}://{userinfo.replace('@', '%40')}{at}{hosts}{rest[end:]}"


def checked_dsn(dsn: str) -> str:
    """``dsn`` itself once it parses: the option parser of every ``--postgres-dsn``."""
    parse_dsn(dsn)
    return dsn


# where a DSN that does not parse may still hold a password: URL userinfo, password= (key/value
# or URL query)
_PASSWORDS = (
    re.compile(r"^[a-z][a-z0-9+.-]*://[^@/?#]*?:(.*)@", re.IGNORECASE | re.DOTALL),
    re.compile(r"password\s*=\s*'((?:[^'\\]|\\.)*)'?", re.IGNORECASE),
    re.compile(r"password\s*=\s*([^\s'&][^\s&]*)", re.IGNORECASE),
)
_QUOTED = re.compile(r'"([^"]*)"')


def _overlaps(token: str, password: str) -> bool:
    """Whether ``token`` holds the password or a piece of it (3 characters or more)."""
    if len(password) < 3 or len(token) < 3:
        return bool(token) and (password in token or token in password)
    return any(token[i:i + 3] in password for i in range(len(token) - 2))


def _strip_secret(message: str, dsn: str = "") -> str:
    """libpq's parse error, safe to show: it quotes the offending token, which can be (part of)
    the password (``invalid percent-encoded token: "..."``), or the whole URI."""
    from stackwatch.core.redact import redact_text

    passwords = [p for pattern in _PASSWORDS for p in pattern.findall(dsn) if p]

    def quoted(match: re.Match[str]) -> str:
        token = match.group(1)
        if "://" not in token and any(_overlaps(token, p) for p in passwords):
            return '"***"'
        return match.group(0)

    return redact_text(_QUOTED.sub(quoted, message)).splitlines()[0] if message else "unparseable"


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
    conn.execute(marked(f"SET statement_timeout = {int(settings.statement_timeout_ms)}"))
    conn.execute(marked(f"SET lock_timeout = {int(settings.lock_timeout_ms)}"))
    if conn.info.server_version >= 140000:
        # the fast tier's connection idles between polls: a server-wide idle_session_timeout
        # shorter than the interval would close it every time (pg_up flapping, a reconnect per poll)
        conn.execute(marked("SET idle_session_timeout = 0"))
    return conn


# What libpq and the server say (connection failures carry no SQLSTATE in psycopg) -> reason.
# The order matters: a pg_hba.conf rejection may mention SSL, and a missing role "does not exist".
_REASONS = (
    ("too_many_connections", ("too many clients", "remaining connection slots are reserved",
                              "too many connections")),
    ("authentication", ("password authentication failed", "no password supplied", "authentication failed",
                        "pg_hba.conf", "role \"")),
    ("tls", ("ssl", "certificate", "gssencmode")),
    ("permission", ("permission denied",)),
    ("database_missing", ("does not exist",)),
)


def classify_error(error: BaseException) -> str:
    """The ``pg_connection_error`` reason of a failed connection attempt (see docs/runbooks)."""
    if isinstance(error, InvalidDSN):
        return "invalid_dsn"
    if not isinstance(error, psycopg.Error):
        return "error"
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate == "53300":
        return "too_many_connections"
    text = str(error).lower()
    for reason, needles in _REASONS:
        if any(needle in text for needle in needles):
            return reason
    return "unreachable" if isinstance(error, psycopg.OperationalError) else "error"


def lost_reason(error: BaseException | None) -> str:
    """The reason exported when a connection is lost mid-poll: ``idle_session_timeout`` when the
    server closed an idle session (SQLSTATE 57P05), ``connection_lost`` otherwise."""
    text = str(error).lower() if error is not None else ""
    if getattr(error, "sqlstate", None) == "57P05" or "idle-session timeout" in text:
        return "idle_session_timeout"
    return "connection_lost"


@contextmanager
def database(dsn: str, settings: ConnectionSettings, dbname: str) -> Iterator[psycopg.Connection]:
    """A short-lived connection to another database of the same instance."""
    conn = connect(dsn, settings, dbname)
    try:
        yield conn
    finally:
        conn.close()
