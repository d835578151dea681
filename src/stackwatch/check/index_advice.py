"""``CREATE INDEX`` suggestions from the generic plans of recorded statements.

pg_stat_statements keeps statements normalized (constants become ``$1``, ``$2``...), so they
cannot be run -- but they can be planned: ``PREPARE`` the text, force the generic plan
(``plan_cache_mode = force_generic_plan``) and ``EXPLAIN EXECUTE`` it with NULL parameters. That
plan is the one the server uses for any parameter values, and nothing is executed: there is no
``ANALYZE``, only ``SELECT`` texts are planned, inside a ``READ ONLY`` transaction bounded by
``statement_timeout``. A ``Seq Scan`` with a ``Filter`` on a large table then names the columns
an index should lead with: equality columns first, then one range column; a B-tree cannot serve
``LIKE``/``ILIKE`` with a parameter pattern, a trigram GIN index (pg_trgm) can.

A candidate is only advice once it is shown to help: :func:`generic_plan` can build it first
(``setup``) inside the same transaction, which is always rolled back, and the candidate counts
only if the plan then scans that index instead of the table.

Typed literals are normalized to ``interval $2`` (a syntax error to ``PREPARE``); they are
rewritten to ``$2::interval`` first. Texts that still do not parse are "not plannable".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from stackwatch.exporters.postgres.commands import marked, without_comments

__all__ = ["ScanFilter", "IndexSuggestion", "is_plannable_select", "parameter_count", "generic_plan",
           "filtered_seq_scans", "suggest_index", "candidates", "uses_index", "without_typed_literals"]

_PREPARED_NAME = "stackwatch_check_plan"
_PARAM = re.compile(r"\$(\d+)")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
# one conjunct of a Filter: "(alias.col op ...)" or "((alias.col)::type op ...)"
_CONJUNCT = re.compile(rf"^\(*(?P<alias>{_IDENT})\.(?P<col>{_IDENT})\)?(?:::[\w\s\[\]\"]+?)?\s*"
                       r"(?P<op>=|<>|<=|>=|<|>|~~\*?|!~~\*?|IS NOT NULL|IS NULL)\s*")
_EQUALITY = {"=", "IS NULL"}
_RANGE = {"<", ">", "<=", ">="}
_PATTERN = {"~~", "~~*"}  # LIKE, ILIKE: a B-tree serves only a constant prefix, never a parameter
# a typed literal as pg_stat_statements normalizes it: "interval '2 seconds'" -> "interval $2"
_TYPE_NAMES = (r"(?:timestamp|time)(?:\s*\(\d+\))?(?:\s+with(?:out)?\s+time\s+zone)?|timestamptz|timetz|interval|date"
               r"|numeric|decimal|bigint|smallint|integer|int[248]?|real|float[48]?|double\s+precision|boolean|bool"
               r"|text|varchar|character\s+varying|char|bytea|uuid|jsonb?|inet|cidr|macaddr|money|xml")
_TYPED_LITERAL = re.compile(rf"(?i)(?<![\w.$])({_TYPE_NAMES})\s+\$(\d+)\b")


@dataclass(frozen=True)
class ScanFilter:
    """A sequential scan that filters rows: which table, and the filter PostgreSQL printed."""

    schema: str
    table: str
    alias: str
    filter: str
    plan_rows: float


@dataclass(frozen=True)
class IndexSuggestion:
    """An index that may turn the scan into an index scan: ``columns`` in index order; a trigram
    GIN index (``opclass`` ``gin_trgm_ops``) for pattern matches."""

    schema: str
    table: str
    columns: tuple[str, ...]
    method: str = "btree"
    opclass: str = ""

    def definition(self, name: str = "", concurrently: bool = True) -> str:
        """``CREATE INDEX`` of this index (``name``d, not concurrent: the form built to verify it)."""
        table = f"{_quote(self.schema)}.{_quote(self.table)}"
        using = "" if self.method == "btree" else f" USING {self.method}"
        columns = ", ".join(_quote(c) + (f" {self.opclass}" if self.opclass else "") for c in self.columns)
        head = "CREATE INDEX CONCURRENTLY" if concurrently else "CREATE INDEX"
        return f"{head}{' ' + _quote(name) if name else ''} ON {table}{using} ({columns})"

    def sql(self) -> str:
        needs = "CREATE EXTENSION IF NOT EXISTS pg_trgm; " if self.opclass == "gin_trgm_ops" else ""
        return f"{needs}{self.definition()};"


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def is_plannable_select(query: str) -> bool:
    """A single ``SELECT`` (no ``INTO``, no second statement): the only texts the check plans."""
    text = without_comments(query).rstrip().rstrip(";")
    return (bool(re.match(r"(?i)select\b", text)) and ";" not in text
            and not re.search(r"(?i)\binto\b", text))


def parameter_count(query: str) -> int:
    """Highest ``$n`` in a normalized statement (the number of NULLs ``EXECUTE`` needs)."""
    return max((int(n) for n in _PARAM.findall(query)), default=0)


def without_typed_literals(query: str) -> str:
    """``query`` with each normalized typed literal (``interval $2``) written as a cast (``$2::interval``)."""
    return _TYPED_LITERAL.sub(lambda m: f"${m[2]}::{' '.join(m[1].split())}", query)


def generic_plan(conn: psycopg.Connection, query: str, timeout_ms: int,
                 setup: tuple[str, ...] = ()) -> dict[str, Any]:
    """The generic plan of ``query`` as EXPLAIN's JSON ``Plan``; runs nothing, keeps nothing.

    ``setup`` statements (building a candidate index) run first in the same transaction, which
    is rolled back whatever happens; without them the transaction is read-only. Raises
    ``ValueError`` for texts that are not a single SELECT, psycopg errors for texts the server
    cannot plan (a syntax error, a parameter of undeterminable type, no privilege on a table).
    """
    if not is_plannable_select(query):
        raise ValueError("only single SELECT statements are planned")
    text = without_typed_literals(query.strip().rstrip(";"))
    nulls = ", ".join(["NULL"] * parameter_count(text))
    execute = f"EXECUTE {_PREPARED_NAME}" + (f"({nulls})" if nulls else "")
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(marked("SET TRANSACTION READ WRITE" if setup else "SET TRANSACTION READ ONLY"))
            conn.execute(sql.SQL(marked("SET LOCAL statement_timeout = {}")).format(
                sql.Literal(str(int(timeout_ms)))))
            conn.execute(marked("SET LOCAL plan_cache_mode = force_generic_plan"))
            _untracked(conn)
            for statement in setup:
                conn.execute(sql.SQL(marked(statement)))
            conn.execute(sql.SQL(marked("PREPARE {} AS ")).format(sql.Identifier(_PREPARED_NAME)) + sql.SQL(text))
            row = conn.execute(sql.SQL(marked("EXPLAIN (FORMAT JSON, VERBOSE) " + execute))).fetchone()
    finally:
        # prepared statements outlive the rolled-back transaction
        if conn.execute(marked("SELECT 1 FROM pg_prepared_statements WHERE name = %s"),
                        (_PREPARED_NAME,)).fetchone():
            conn.execute(sql.SQL(marked("DEALLOCATE {}")).format(sql.Identifier(_PREPARED_NAME)))
    assert row is not None
    return dict(row[0][0]["Plan"])


def uses_index(plan: dict[str, Any], index: str) -> bool:
    """Whether any node of ``plan`` scans the index named ``index``."""
    return any(node.get("Index Name") == index for node in _nodes(plan))


def _untracked(conn: psycopg.Connection) -> None:
    """Keep the planning out of pg_stat_statements where allowed (PostgreSQL 13 counts it as a call).

    ``pg_stat_statements.track`` is superuser-only; for other roles the savepoint absorbs the error.
    """
    try:
        with conn.transaction():
            conn.execute(marked("SET LOCAL pg_stat_statements.track = 'none'"))
    except psycopg.Error:
        pass


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def filtered_seq_scans(plan: dict[str, Any]) -> list[ScanFilter]:
    """Every ``Seq Scan`` node of ``plan`` that has a ``Filter``."""
    return [ScanFilter(node.get("Schema", "public"), node["Relation Name"], node.get("Alias", node["Relation Name"]),
                       node["Filter"], float(node.get("Plan Rows", 0)))
            for node in _nodes(plan) if node.get("Node Type") == "Seq Scan" and node.get("Filter")]


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _split_top_level(text: str, word: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    token = f" {word} "
    while i < len(text):
        char = text[i]
        if char == "'":  # skip string literals
            i = text.find("'", i + 1) if text.find("'", i + 1) != -1 else len(text)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            parts.append(text[start:i])
            start = i + len(token)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _conjuncts(scan: ScanFilter) -> list[tuple[str, str]] | None:
    """``(column, operator)`` of each conjunct of ``scan``'s filter on its own table's columns;
    ``None`` for OR filters (no single index serves them)."""
    expression = _strip_parens(scan.filter)
    if len(_split_top_level(expression, "OR")) > 1:
        return None
    found = []
    for conjunct in _split_top_level(expression, "AND"):
        match = _CONJUNCT.match(_strip_parens(conjunct))
        if match and _unquote(match["alias"]) == scan.alias:
            found.append((_unquote(match["col"]), match["op"]))
    return found


def suggest_index(scan: ScanFilter) -> IndexSuggestion | None:
    """Columns for a B-tree index serving ``scan``'s filter, or ``None`` (OR filters, expressions only).

    Equality columns come first (any order serves them), then the first range column, which is
    what a B-tree can use; further range columns would not narrow the index scan.
    """
    conjuncts = _conjuncts(scan)
    if conjuncts is None:
        return None
    equality: list[str] = []
    ranges: list[str] = []
    for column, op in conjuncts:
        target = equality if op in _EQUALITY else ranges if op in _RANGE else None
        if target is not None and column not in equality and column not in ranges:
            target.append(column)
    columns = tuple(equality + ranges[:1])
    return IndexSuggestion(scan.schema, scan.table, columns) if columns else None


def candidates(scan: ScanFilter, trigram: bool) -> list[IndexSuggestion]:
    """Indexes worth trying for ``scan``, the most specific first: the B-tree of
    :func:`suggest_index`, then (``trigram``: pg_trgm can be used) a trigram GIN index for each
    ``LIKE``/``ILIKE`` column, which a B-tree cannot serve with a parameter pattern."""
    btree = suggest_index(scan)
    found = [btree] if btree is not None else []
    if trigram:
        patterns = dict.fromkeys(column for column, op in _conjuncts(scan) or [] if op in _PATTERN)
        found += [IndexSuggestion(scan.schema, scan.table, (column,), "gin", "gin_trgm_ops") for column in patterns]
    return found
