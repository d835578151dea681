"""Statement fingerprints: SQL with every literal and placeholder replaced, so repeats compare equal.

``SELECT * FROM t WHERE id = 42`` and ``select *  from t where id = $1`` share the fingerprint
``select * from t where id = ?``. Fingerprints are what N+1 detection counts and logs: they
never contain literal values.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["describe", "fingerprint", "operation_name"]

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRINGS = re.compile(r"(?:\b[eEbBxXuU]&?)?'(?:[^']|'')*'|\$(\w*)\$.*?\$\1\$", re.DOTALL)
_PLACEHOLDERS = re.compile(r"%\(\w+\)s|%s|\$\d+|(?<![:\w]):\w+|\?")
_NUMBERS = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_LISTS = re.compile(r"([(\[])\s*\?(?:\s*,\s*\?)+\s*([)\]])")
_ROWS = re.compile(r"\(\.\.\.\)(?:\s*,\s*\(\.\.\.\))+|\(\?\)(?:\s*,\s*\(\?\))+")
_SPACES = re.compile(r"\s+")
_OPERATION = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.DOTALL)


@lru_cache(maxsize=4096)
def describe(statement: str) -> tuple[str, str]:
    """``(operation name, fingerprint)`` of ``statement``; cached, as ORMs repeat the same text."""
    return operation_name(statement), fingerprint(statement)


def operation_name(statement: str) -> str:
    """The leading keyword in upper case (``SELECT``, ``INSERT``...), ``OTHER`` when there is none."""
    match = _OPERATION.match(statement)
    return match.group(1).upper() if match else "OTHER"


def fingerprint(statement: str) -> str:
    """Normalized ``statement``: lower case, one space, literals and placeholders as ``?``."""
    text = _COMMENTS.sub(" ", statement)
    text = _STRINGS.sub("?", text)
    text = _PLACEHOLDERS.sub("?", text)
    text = _NUMBERS.sub("?", text)
    text = _SPACES.sub(" ", text).strip().lower()
    text = _LISTS.sub(r"\1...\2", text)
    text = _ROWS.sub("(...)", text)
    return text.rstrip("; ")
