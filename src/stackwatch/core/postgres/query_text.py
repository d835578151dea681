"""Statement texts safe to export: passwords redacted by a linear SQL scanner, then cut.

A statement text comes from whoever ran it, so it is hostile input: any role can make it 100 KB
long, and ``ALTER ROLE ... PASSWORD`` hides its literal behind every lexical form PostgreSQL
accepts. Matching text with a regex fails both ways (backtracking is quadratic on long runs, and
``PASSWORD'x'``, ``PASSWORD /* c */ 'x'``, ``E'a\\'b'``, ``U&'...'`` or ``$q$...$q$`` slip past a
pattern), so :func:`redact_sql` reads the statement's tokens the way PostgreSQL's lexer does
(comments, nested block comments, every string form, dollar quotes, quoted identifiers) and
replaces the string literal after a ``password`` keyword. Every token is consumed by patterns that
cannot backtrack into a shorter token (a word must end at a non-word character) or ``str.find``,
so the work is linear in the text, and :func:`normalize_query` cuts the text before scanning it.
No possessive quantifiers: Python 3.11.2 (Debian 12's) mis-matches them and let passwords through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from stackwatch.core.redact import redact_text

__all__ = ["normalize_query", "redact_sql"]

REDACTED = "'***'"

_LETTER = r"A-Za-z_\x80-\U0010ffff"
_TOKEN = re.compile(rf"""
    (?P<space>\s+)
    # words, numbers, punctuation and spaces that can neither open a literal or comment nor be
    # the keyword password: skipped as one token, which keeps long ordinary texts cheap
  | (?P<plain>(?:\s+|\d+|(?![eEbBxXnN]'|[uU]&['"])[^\W\d][\w$]*(?![\w$])(?<!(?i:password))
                |[^\w\s'"$/-]|/(?!\*)|-(?!-))+)
  | (?P<line>--[^\n\r]*)
  | (?P<block>/\*)
  | (?P<dollar>\$(?:[{_LETTER}][{_LETTER}0-9]*)?\$)
  | (?P<string>(?:[eE]|[uU]&|[bBxXnN])?')
  | (?P<ident>(?:[uU]&)?"(?:[^"]|"")*"?)
  | (?P<word>[{_LETTER}][{_LETTER}0-9$]*)
  | (?P<other>[0-9]+|.)
""", re.VERBOSE | re.DOTALL)
_COMMENT_MARK = re.compile(r"/\*|\*/")
# a string's body and closing quote: '' is a quote; backslash escapes in E'' (and in plain
# strings when standard_conforming_strings is off); an unterminated string runs to the end
_BODY = re.compile(r"(?:[^']|'')*'?", re.DOTALL)
_ESCAPED_BODY = re.compile(r"(?:[^'\\]|\\.|'')*\\?'?", re.DOTALL)
_CONNINFO_PASSWORD = re.compile(r"password\s*=", re.IGNORECASE)


def _block_end(text: str, pos: int) -> int:
    """End of the (nested) block comment whose ``/*`` ends at ``pos``; the text's end if open."""
    depth = 1
    for mark in _COMMENT_MARK.finditer(text, pos):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(text)


def _string_end(text: str, start: int, pos: int, escapes: bool) -> int:
    """End of the string literal opened at ``start`` whose body starts at ``pos``; ``escapes``:
    read backslash escapes in plain (and ``N''``) literals, as standard_conforming_strings=off does."""
    if text[start] in "eE" or (escapes and text[start] in "'nN"):
        return _ESCAPED_BODY.match(text, pos).end()  # type: ignore[union-attr]
    return _BODY.match(text, pos).end()  # type: ignore[union-attr]


def _masks(text: str, escapes: bool) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, is_password)`` of what to mask, in order: the literal(s) after each
    ``password`` keyword (continuation literals included), and the rest of a ``password=`` in
    other string literals (a conninfo)."""
    expecting = False  # after the keyword password, before its literal (whitespace/comments)
    masked: tuple[int, int] | None = None  # the password literal(s) seen so far
    pos, size = 0, len(text)
    while pos < size:
        token = _TOKEN.match(text, pos)
        assert token is not None  # the last alternative matches any character
        kind, end = token.lastgroup, token.end()
        if kind == "block":
            end = _block_end(text, end)
        elif kind == "dollar":
            close = text.find(token.group(), end)
            end = size if close < 0 else close + len(token.group())
        elif kind == "string":
            end = _string_end(text, pos, end, escapes)
        if kind in ("string", "dollar"):
            if expecting or masked:
                masked = (masked[0] if masked else pos, end)
            elif (found := _CONNINFO_PASSWORD.search(text, pos, end)) is not None:
                yield found.end(), end - 1 if end - found.end() > 1 and text[end - 1] == "'" else end, False
            expecting = False
        elif kind not in ("space", "line", "block"):
            if masked:
                yield masked[0], masked[1], True
                masked = None
            word = text[pos:end]
            expecting = (word.lower() if kind == "word" else word) in ("password", '"password"')
        pos = end
    if masked:
        yield masked[0], masked[1], True


def redact_sql(text: str) -> str:
    """``text`` with the string literal(s) following each ``password`` keyword (or option name)
    replaced by ``'***'``, and the value of a ``password=`` inside other literals by ``***``.

    A plain ``'...'`` ends differently with standard_conforming_strings on or off, which cannot
    be known for a statement run earlier: both readings are scanned and what either masks is
    masked, so neither leaks a part of a password.
    """
    merged: list[list[Any]] = []
    readings = [False, True] if "\\" in text else [False]  # without a backslash both read alike
    for start, end, password in sorted(m for escapes in readings for m in _masks(text, escapes)):
        if merged and start <= merged[-1][1]:  # overlaps the previous mask: widen it
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = merged[-1][2] or password
        else:
            merged.append([start, end, password])
    out, done = [], 0
    for start, end, password in merged:
        out += [text[done:start], REDACTED if password else "***"]
        done = end
    out.append(text[done:])
    return "".join(out)


def normalize_query(text: str, max_bytes: int) -> str:
    """Whitespace collapsed, passwords redacted, at most ``max_bytes`` of UTF-8 (cut on a
    character boundary, ``...`` marking the cut).

    Only a bounded prefix is scanned: a 100 KB statement costs what a short one does. A URL
    the cut splits before its ``@`` is dropped (its password would no longer be recognized); a
    password literal or ``password=`` value the cut splits is masked whole.
    """
    limit = 4 * max_bytes + 1024
    cut = len(text) > limit
    if cut:
        text = text[:limit]
        words = text.rsplit(None, 1)
        if words and "://" in words[-1]:  # a URL cut before its "@": its password would no longer be seen
            text = words[0] if len(words) == 2 else ""
    text = " ".join(redact_text(redact_sql(text)).split())
    data = text.encode()
    if len(data) <= max_bytes and not cut:
        return text
    return data[:max(0, min(len(data), max_bytes - 3))].decode("utf-8", "ignore") + "..."
