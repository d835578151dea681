"""Redact secrets from connection strings before they reach logs, labels or errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact", "redact_text"]

_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE)


def redact(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***``.

    Handles URL DSNs (``postgresql://u:p@h/db``, ``redis://:p@h``) and libpq
    key/value DSNs (``host=h password=p``), including ``password=`` in a URL query.
    """
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return redact_text(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KV_PASSWORD.sub(r"\1***", dsn)


def redact_text(text: str) -> str:
    """Redact every URL password and ``password=...`` pair found anywhere in ``text``."""
    text = _URL_USERINFO.sub(r"\1:***@", text)
    return _KV_PASSWORD.sub(r"\1***", text)
