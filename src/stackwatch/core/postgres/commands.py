"""What kind of statement a pg_stat_statements text is, and how stackwatch marks its own SQL.

One classifier for everything that judges statements (the exporter's ``command`` label, the
slow-statement count, ``stackwatch check``, the alert and dashboards through that label): a
slow ``VACUUM`` or a monitoring tool's catalog read is not the application's slow query, and
rows changed by an ``UPDATE`` are not rows a ``SELECT`` failed to bound.

Every statement the exporter and ``stackwatch check`` send starts with :data:`MARKER`;
pg_stat_statements keeps a statement's leading comment in its text, so their own statements are
recognized there (and never planned or judged as the application's). Standard library only.
"""

from __future__ import annotations

import re

__all__ = ["COMMANDS", "MARKER", "MONITORING_ROLES_SQL", "classify", "marked", "without_comments"]

#: the comment that starts every statement stackwatch sends to PostgreSQL
MARKER = "/* stackwatch */"

#: every value of the ``command`` label
COMMANDS = ("select", "insert", "update", "delete", "utility", "monitoring", "other")

#: OIDs of the roles whose statements are a monitoring tool's: members of pg_monitor that are not
#: superusers (a superuser is a member of every role)
MONITORING_ROLES_SQL = ("SELECT oid::bigint AS userid FROM pg_roles "
                        "WHERE NOT rolsuper AND pg_has_role(oid, 'pg_monitor', 'MEMBER')")

_LEADING_COMMENTS = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*(?:\n|$)\s*)*", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# reads of PostgreSQL's own catalogs, statistics views and settings: what monitoring tools run
_CATALOG_READ = re.compile(r'(?i)\b(?:from|join)\s+(?:"?\w+"?\.)?"?pg_\w+|^\s*select\s+current_setting\(')
_SELECTS = {"select", "values", "table"}
_CHANGES = {"insert", "update", "delete"}
_OTHER = {"call", "merge"}  # application code, but neither a plain query nor maintenance (DO is a script)


def without_comments(query: str) -> str:
    """``query`` without its leading comments (and the whitespace around them)."""
    return _LEADING_COMMENTS.sub("", query)


def marked(sql: str) -> str:
    """``sql`` with stackwatch's marker in front."""
    return f"{MARKER} {sql}"


def classify(query: str, monitoring_role: bool = False) -> str:
    """The :data:`COMMANDS` value of a normalized statement text.

    ``monitoring`` for stackwatch's own statements, catalog/statistics reads and anything run by
    a monitoring role (``monitoring_role``); for ``WITH`` the main statement after the CTEs
    decides (a data-modifying CTE's outer ``SELECT`` still reads as ``select``).
    """
    text = without_comments(query)
    if monitoring_role or MARKER in query or _CATALOG_READ.search(text):
        return "monitoring"
    text = text.lstrip("( \t\r\n")  # "(SELECT ...) UNION ...", PL/pgSQL's RETURN (...)
    first = _FIRST_WORD.match(text)
    if first is None:  # empty, or "<insufficient privilege>"
        return "other"
    word = first.group(0).lower()
    if word == "with":
        word = _main_keyword(text[first.end():])
    if word in _SELECTS:
        return "select"
    if word in _CHANGES:
        return word
    if word in _OTHER or word == "":
        return "other"
    return "utility"


def _main_keyword(text: str) -> str:
    """The first SELECT/INSERT/UPDATE/DELETE/MERGE outside parentheses and quotes (CTE bodies)."""
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            end = text.find(char, i + 1)
            i = len(text) if end == -1 else end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char.isalpha() and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            word = _FIRST_WORD.match(text, i)
            assert word is not None
            name = word.group(0).lower()
            if name in _SELECTS | _CHANGES | {"merge"}:
                return name
            i = word.end()
            continue
        i += 1
    return ""
