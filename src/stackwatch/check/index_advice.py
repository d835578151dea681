"""``CREATE INDEX`` suggestions from the generic plans of recorded statements.

pg_stat_statements keeps statements normalized (constants become ``$1``, ``$2``...), so they
cannot be run -- but they can be planned: ``PREPARE`` the text, force the generic plan
(``plan_cache_mode = force_generic_plan``) and ``EXPLAIN EXECUTE`` it with NULL parameters. That
plan is the one the server uses for any parameter values, and nothing is executed: there is no
``ANALYZE``, only ``SELECT`` texts are planned, inside a ``READ ONLY`` transaction bounded by
``statement_timeout``. A ``Seq Scan`` with a ``Filter`` on a large table then names the columns
an index should lead with: equality columns first, then the ``ORDER BY`` key of a sort right above
the scan (``(user_id, created_at DESC)`` serves ``WHERE user_id = $1 ORDER BY created_at DESC``
without sorting) or one range column. The other index types go where a B-tree cannot serve the
operator: ``LIKE``/``ILIKE`` with a parameter pattern -> a trigram GIN index (pg_trgm); jsonb
containment and key tests, array containment and overlap, full-text ``@@`` -> GIN; range and
geometric operators (overlap ``&&``, containment ``@>``/``<@``) -> GiST; equality alone on a
wide column -> Hash (4-byte codes instead of whole keys). Predicates that survive
pg_stat_statements' normalization as constants (``deleted_at IS NULL``, a bare ``active`` or
``NOT archived``) make a partial index (``... WHERE deleted_at IS NULL``); ``active = true`` is
recorded as ``active = $2`` and cannot be told from a parameter -- unless pg_stats shows the
column skewed (one value in most rows): then the rare value is substituted for the parameter
(:func:`with_parameter`) and a partial index on it (:func:`skewed_candidate`) is tried on that
text. A ``LIMIT`` over a sort of index-scanned rows gets the composite index with the sort key too.

A candidate is only advice once it is shown to help: :func:`generic_plan` can build it first
(``setup``) inside the same transaction, which is always rolled back, and the candidate counts
only if the plan then scans that index instead of the table.

Typed literals are normalized to ``interval $2`` (a syntax error to ``PREPARE``); they are
rewritten to ``$2::interval`` first. Texts that still do not parse are "not plannable".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from stackwatch.core.postgres.commands import marked, without_comments

__all__ = ["Column", "ScanFilter", "IndexSuggestion", "is_plannable_select", "parameter_count", "generic_plan",
           "scans_to_index", "suggest_index", "candidates", "uses_index", "without_typed_literals",
           "nodes", "parameter_equalities", "rare_value", "sql_literal", "with_parameter", "skewed_candidate"]

_PREPARED_NAME = "stackwatch_check_plan"
_PARAM = re.compile(r"\$(\d+)")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
# one conjunct of a Filter: "(alias.col op ...)" or "((alias.col)::type op ...)"
_CONJUNCT = re.compile(rf"^\(*(?P<alias>{_IDENT})\.(?P<col>{_IDENT})\)?(?:::[\w\s\[\]\"]+?)?\s*"
                       r"(?P<op>=|<>|<=|>=|<<|>>|<@|@>|&&|@@|@\?|\?\||\?&|\?|-\|-|<|>|~~\*?|!~~\*?"
                       r"|IS NOT NULL|IS NULL)\s*")
# a boolean column on its own, or negated: "o.active", "(NOT o.archived)"
_BARE = re.compile(rf"^(?P<neg>NOT\s+)?\(*(?P<alias>{_IDENT})\.(?P<col>{_IDENT})\)*$")
# one key of a Sort node: "o.created_at DESC", "o.name NULLS FIRST"
_SORT_KEY = re.compile(rf"^(?P<alias>{_IDENT})\.(?P<col>{_IDENT})(?P<dir>(?:\s+(?:DESC|NULLS FIRST|NULLS LAST))*)$")
_EQUALITY = {"=", "IS NULL"}
_RANGE = {"<", ">", "<=", ">="}
_PATTERN = {"~~", "~~*"}  # LIKE, ILIKE: a B-tree serves only a constant prefix, never a parameter
#: predicates pg_stat_statements leaves as written (no constant to normalize): a partial index's WHERE
_CONSTANT = {"IS NULL": "{} IS NULL", "IS NOT NULL": "{} IS NOT NULL", "TRUE": "{}", "FALSE": "NOT {}"}
#: operators each column kind's GIN or GiST operator class serves (the default classes)
_GIN = {"jsonb": {"@>", "?", "?|", "?&", "@?", "@@"}, "array": {"@>", "<@", "&&"}, "tsvector": {"@@"}}
_GIST = {"range": {"&&", "@>", "<@", "<<", ">>", "-|-"}, "geometric": {"&&", "@>", "<@", "<<", ">>"}}
_SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
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
    #: ``(column, direction)`` keys of a sort right above the scan (``direction``: "", "DESC"...)
    order: tuple[tuple[str, str], ...] = ()
    #: an index already serves the scan: only an index that also serves the sort is news
    indexed: bool = False


@dataclass(frozen=True)
class Column:
    """What the catalog says of a filtered column: its kind (``jsonb``, ``array``, ``tsvector``,
    ``range``, ``geometric`` or ``scalar``) and its average width in bytes (pg_stats)."""

    kind: str = "scalar"
    avg_width: float = 0.0


@dataclass(frozen=True)
class IndexSuggestion:
    """An index that may turn the scan into an index scan: ``columns`` in index order (``order``:
    each one's direction, ``DESC`` for a descending sort key); a trigram GIN index (``opclass``
    ``gin_trgm_ops``) for pattern matches; ``where``: the predicate of a partial index."""

    schema: str
    table: str
    columns: tuple[str, ...]
    method: str = "btree"
    opclass: str = ""
    order: tuple[str, ...] = ()
    where: tuple[tuple[str, str], ...] = ()  # (column, operator of _CONSTANT, or "= <literal>")

    def definition(self, name: str = "", concurrently: bool = True) -> str:
        """``CREATE INDEX`` of this index (``name``d, not concurrent: the form built to verify it)."""
        table = f"{_quote(self.schema)}.{_quote(self.table)}"
        using = "" if self.method == "btree" else f" USING {self.method}"
        directions = self.order or ("",) * len(self.columns)
        columns = ", ".join(_quote(c) + (f" {self.opclass}" if self.opclass else "") + (f" {d}" if d else "")
                            for c, d in zip(self.columns, directions))
        head = "CREATE INDEX CONCURRENTLY" if concurrently else "CREATE INDEX"
        where = " AND ".join(_CONSTANT[op].format(_quote(column)) if op in _CONSTANT else f"{_quote(column)} {op}"
                             for column, op in self.where)
        return f"{head}{' ' + _quote(name) if name else ''} ON {table}{using} ({columns})" + (
            f" WHERE {where}" if where else "")

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
    return any(node.get("Index Name") == index for node in nodes(plan))


def _untracked(conn: psycopg.Connection) -> None:
    """Keep the planning out of pg_stat_statements where allowed (PostgreSQL 13 counts it as a call).

    ``pg_stat_statements.track`` is superuser-only; for other roles the savepoint absorbs the error.
    """
    try:
        with conn.transaction():
            conn.execute(marked("SET LOCAL pg_stat_statements.track = 'none'"))
    except psycopg.Error:
        pass


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of ``plan``, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans_to_index(plan: dict[str, Any]) -> list[ScanFilter]:
    """Every ``Seq Scan`` of ``plan`` that has a ``Filter`` (with the keys of a sort right above
    it), and every index scan whose rows a sort under a ``LIMIT`` orders: an index that also holds
    the sort key would read the first rows in order and stop."""
    found: list[ScanFilter] = []
    _collect(plan, None, False, found)
    return found


def _collect(node: dict[str, Any], sort: list[str] | None, limited: bool, found: list[ScanFilter]) -> None:
    kind = node.get("Node Type", "")
    if kind in _SCANS and "Relation Name" in node:
        alias = node.get("Alias", node["Relation Name"])
        order = _sort_keys(sort or [], alias)
        conditions = [node[k] for k in ("Index Cond", "Recheck Cond", "Filter") if node.get(k)]
        if kind == "Seq Scan" and node.get("Filter"):
            found.append(ScanFilter(node.get("Schema", "public"), node["Relation Name"], alias, node["Filter"],
                                    float(node.get("Plan Rows", 0)), order))
        elif kind != "Seq Scan" and limited and order and conditions:
            found.append(ScanFilter(node.get("Schema", "public"), node["Relation Name"], alias,
                                    " AND ".join(conditions), float(node.get("Plan Rows", 0)), order, indexed=True))
    sorting = kind in ("Sort", "Incremental Sort")
    for child in node.get("Plans", []):
        _collect(child, node.get("Sort Key") if sorting else None, kind == "Limit" or (sorting and limited), found)


def _sort_keys(keys: list[str], alias: str) -> tuple[tuple[str, str], ...]:
    """``(column, direction)`` of sort ``keys`` when every one is a plain column of ``alias``."""
    parsed = [_SORT_KEY.match(key.strip()) for key in keys]
    if not parsed or not all(m and _unquote(m["alias"]) == alias for m in parsed):
        return ()
    return tuple((_unquote(m["col"]), " ".join(m["dir"].split())) for m in parsed if m)


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
    """``(column, operator)`` of each conjunct of ``scan``'s filter on its own table's columns
    (``TRUE``/``FALSE`` for a bare boolean column); ``None`` for OR filters (no single index serves them)."""
    expression = _strip_parens(scan.filter)
    if len(_split_top_level(expression, "OR")) > 1:
        return None
    found = []
    for conjunct in _split_top_level(expression, "AND"):
        text = _strip_parens(conjunct)
        match = _CONJUNCT.match(text)
        if match and _unquote(match["alias"]) == scan.alias:
            found.append((_unquote(match["col"]), match["op"]))
            continue
        bare = _BARE.match(text)
        if bare and _unquote(bare["alias"]) == scan.alias:
            found.append((_unquote(bare["col"]), "FALSE" if bare["neg"] else "TRUE"))
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


def candidates(scan: ScanFilter, columns: Mapping[str, Column] | None = None,
               hash_min_width: float = math.inf) -> list[IndexSuggestion]:
    """Indexes worth trying for ``scan``, the most specific first: a partial index on the
    predicates that are constants, the B-tree holding the sort key, a Hash index for equality alone
    on a column at least ``hash_min_width`` bytes wide, the B-tree of :func:`suggest_index`, GIN
    or GiST for the operators of the filtered ``columns``' kinds, a trigram GIN index (pg_trgm) for
    ``LIKE``/``ILIKE``. An index scan already sorted by a sort above it only gets the first two."""
    conjuncts = _conjuncts(scan)
    if conjuncts is None:
        return []
    kinds = columns or {}
    equality = list(dict.fromkeys(c for c, op in conjuncts if op == "="))
    ranges = [c for c, op in conjuncts if op in _RANGE and c not in equality]
    constants = tuple(dict.fromkeys((c, op) for c, op in conjuncts if op in _CONSTANT))
    sort = [(c, d) for c, d in scan.order if c not in equality]

    def index(keys: list[tuple[str, str]], **kind: Any) -> IndexSuggestion:
        return IndexSuggestion(scan.schema, scan.table, tuple(c for c, _ in keys),
                               order=tuple(d for _, d in keys) if any(d for _, d in keys) else (), **kind)

    lead = [(c, "") for c in equality]
    keyed = lead + (sort if scan.order else [(c, "") for c in ranges[:1]])
    found: list[IndexSuggestion] = []
    if constants:
        found.append(index(keyed or [(constants[0][0], "")], where=constants))
    if scan.order:
        found.append(index([(c, "") for c in dict.fromkeys(c for c, op in conjuncts if op in _EQUALITY)] + sort))
    if not scan.indexed:
        single = conjuncts[0] if len(conjuncts) == 1 else None
        if single and single[1] == "=" and kinds.get(single[0], Column()).avg_width >= hash_min_width:
            found.append(index([(single[0], "")], method="hash"))
        btree = suggest_index(scan)
        found += [btree] if btree is not None else []
        for column, op in conjuncts:
            kind = kinds.get(column, Column()).kind
            if op in _GIN.get(kind, ()) or op in _GIST.get(kind, ()):
                found.append(index([(column, "")], method="gin" if kind in _GIN else "gist"))
        patterns = dict.fromkeys(column for column, op in conjuncts if op in _PATTERN)
        found += [IndexSuggestion(scan.schema, scan.table, (column,), "gin", "gin_trgm_ops") for column in patterns]
    return list(dict.fromkeys(found))


def parameter_equalities(scan: ScanFilter) -> list[tuple[str, int]]:
    """``(column, n)`` of each conjunct ``column = $n`` of ``scan``'s filter on its own table."""
    expression = _strip_parens(scan.filter)
    if len(_split_top_level(expression, "OR")) > 1:
        return []
    found = []
    for conjunct in _split_top_level(expression, "AND"):
        match = _PARAMETER_EQUALITY.match(_strip_parens(conjunct))
        if match and _unquote(match["alias"]) == scan.alias:
            found.append((_unquote(match["col"]), int(match["n"])))
    return found


def rare_value(values: list[str], freqs: list[float], skew_share: float) -> tuple[str, float] | None:
    """``(value, share of rows)`` of the most common value other than the dominant one, when one
    value of pg_stats' most common values fills at least ``skew_share`` of the rows; else None."""
    if not values or len(values) != len(freqs) or max(freqs) < skew_share:
        return None
    dominant = freqs.index(max(freqs))
    rest = [(freq, value) for i, (value, freq) in enumerate(zip(values, freqs)) if i != dominant]
    if not rest:
        return None
    freq, value = max(rest)
    return value, freq


def sql_literal(value: str, type_name: str) -> str:
    """``value`` (pg_stats' text form) as an SQL literal of ``type_name``: ``true``, ``'pending'``,
    ``'3'::integer``."""
    if type_name == "boolean":
        return "true" if value in ("t", "true") else "false"
    quoted = "'" + value.replace("'", "''") + "'"
    return quoted if type_name in ("text", "character varying") or type_name.startswith(
        ("character varying(", "character(")) else f"{quoted}::{type_name}"


def with_parameter(query: str, n: int, literal: str) -> str:
    """``query`` with ``$n`` replaced by ``literal`` and the later parameters renumbered (a
    parameter no longer referenced could not be typed by ``PREPARE``)."""
    def replace(match: re.Match[str]) -> str:
        m = int(match[1])
        return f"({literal})" if m == n else f"${m - 1}" if m > n else match[0]

    return _PARAM.sub(replace, query)


def skewed_candidate(scan: ScanFilter, column: str, literal: str) -> IndexSuggestion:
    """A partial index for the rows where the skewed ``column`` holds the rare ``literal``, keyed by the
    other equality columns of the filter (else by the column itself)."""
    conjuncts = _conjuncts(scan) or []
    keys = tuple(dict.fromkeys(c for c, op in conjuncts if op in _EQUALITY and c != column)) or (column,)
    return IndexSuggestion(scan.schema, scan.table, keys, where=((column, f"= {literal}"),))


# "alias.col = $3", "(alias.col)::text = $3", "alias.col = ($3)::integer"
_PARAMETER_EQUALITY = re.compile(rf"^\(*(?P<alias>{_IDENT})\.(?P<col>{_IDENT})\)?(?:::[\w\s\[\]\"]+?)?\s*=\s*"
                                 r"\(*\$(?P<n>\d+)\)?(?:::[\w\s\[\]\"]+)?$")
