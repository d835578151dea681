"""Redact secrets from connection strings before they reach logs, labels or errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact", "redact_text"]

# password=value or password='quoted value' (an unterminated quote runs to the end); possessive
# quantifiers and a literal start keep the scan linear however long or hostile the text is
_KV_PASSWORD = re.compile(r"(password\s*+=\s*+)('(?:[^'\\]|\\.)*+'?|\S++)", re.IGNORECASE)
_SCHEME_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USER = re.compile(r"[^:/@\s]*+")
_NON_SPACE = re.compile(r"\S*+")


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
    """Redact every URL password and ``password=...`` pair found anywhere in ``text``.

    A URL password runs from the ``:`` after the user to the last ``@`` before whitespace (an
    unencoded ``@`` in it stays hidden). Linear in ``len(text)``: it also scans statement texts
    and error messages that anyone can make long.
    """
    return _KV_PASSWORD.sub(r"\1***", _redact_urls(text))


def _redact_urls(text: str) -> str:
    out: list[str] = []
    done = pos = 0  # text[:done] is in out; "://" is searched from pos
    while (mark := text.find("://", pos)) >= 0:
        start = mark
        while start > done and text[start - 1] in _SCHEME_CHAR:
            start -= 1
        user_end = _USER.match(text, mark + 3).end()  # type: ignore[union-attr]
        pos = mark + 3
        if start == mark or not any(c.isalpha() for c in text[start:mark]) or \
                not text.startswith(":", user_end):
            continue
        word_end = _NON_SPACE.match(text, user_end).end()  # type: ignore[union-attr]
        at = text.rfind("@", user_end, word_end)
        pos = word_end  # a later "://" in this word has no "@" after it, or lies in the password
        if at >= 0:
            out.append(text[done:user_end] + ":***")
            done = pos = at
    out.append(text[done:])
    return "".join(out)
