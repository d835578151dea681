"""Redis URLs and the exporter's clients (one per tier, see ``target.py``).

The client is built to fail fast and let the target decide: socket timeouts, no built-in
retries (the target reconnects with backoff and says why in ``redis_connection_error``), the
client name ``stackwatch`` so operators can spot it in ``CLIENT LIST``, and no
``CLIENT SETINFO`` so an ACL user needs nothing beyond what the collectors use.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from stackwatch.core.redact import redact, redact_text

__all__ = ["CLIENT_NAME", "QUEUE_READER_NAME", "ConnectionSettings", "InvalidURL", "checked_url", "classify_error",
           "connect", "parse_redis_url", "url_name"]

_SCHEMES = ("redis", "rediss")

# Skip CLIENT SETINFO: redis-py 7+ spells it driver_info=None, older versions lib_name=None.
_NO_SETINFO: dict[str, None] = (
    {"driver_info": None} if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None})


class InvalidURL(ValueError):
    """The Redis URL is malformed (the message shows it with the password redacted)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Timeouts of the exporter's connection."""

    socket_timeout: float = 5.0
    connect_timeout: float = 5.0


def checked_url(url: str) -> str:
    """``url`` itself once it parses: the option parser of ``--redis-url``."""
    parse_redis_url(url)
    return url


def parse_redis_url(url: str) -> dict[str, object]:
    """Check a ``redis://`` or ``rediss://`` URL, raising :class:`InvalidURL` without its secret."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if any(char in userinfo for char in "@/?#"):
        raise InvalidURL("invalid Redis URL: percent-encode '@', '/', '?' and '#' in the user name and "
                         "password (the URL is not shown because it may hold a password)")
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidURL(f"invalid Redis URL {shown}: {error}") from None
    if parts.scheme not in _SCHEMES:
        raise InvalidURL(f"invalid Redis URL {shown}: scheme must be redis:// or rediss://")
    if not parts.hostname:
        raise InvalidURL(f"invalid Redis URL {shown}: missing host")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise InvalidURL(f"invalid Redis URL {shown}: the path must be a database number, e.g. /0")
    if port == 0:
        raise InvalidURL(f"invalid Redis URL {shown}: port must be 1-65535")
    try:
        parsed: dict[str, object] = parse_url(url)
        return parsed
    except (ValueError, TypeError) as error:
        raise InvalidURL(f"invalid Redis URL {shown}: {redact_text(str(error))}") from None


#: the name a stackwatch connection gives itself (CLIENT SETNAME) ...
CLIENT_NAME = "stackwatch"
#: ... and an exporter's that reads job queues (``--redis-queue``), whose reads Redis counts as
#: keyspace lookups: ``stackwatch check`` tells from CLIENT LIST that its INFO window holds them
QUEUE_READER_NAME = "stackwatch-queues"


def url_name(url: str) -> str:
    """``host:port/db``: a readable target name that carries no secret."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}/{parts.path.strip('/') or '0'}"


def connect(url: str, settings: ConnectionSettings, name: str = CLIENT_NAME) -> redis.Redis:
    """A client for ``url``, named ``name``, that has answered PING (raises when unreachable or refused)."""
    parse_redis_url(url)
    client = redis.Redis.from_url(
        url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
        **_NO_SETINFO,
        decode_responses=False,
        protocol=2,  # RESP2 works on every server version and needs no HELLO
        max_connections=1,  # one long-lived connection per target
    )
    try:
        client.ping()
    except Exception:
        client.close()
        raise
    return client


def classify_error(error: BaseException) -> str:
    """A fixed label for why a connection failed."""
    if isinstance(error, InvalidURL):
        return "invalid_url"
    if isinstance(error, redis.AuthenticationError):
        return "authentication"
    if isinstance(error, redis.exceptions.NoPermissionError):
        return "permission"
    if isinstance(error, redis.exceptions.BusyLoadingError):
        return "loading"
    text = str(error).lower()
    if "wrongpass" in text or "noauth" in text or "invalid password" in text or "invalid username" in text:
        return "authentication"
    if "ssl" in text or "certificate" in text:
        return "tls"
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return "unreachable"
    return "error"
