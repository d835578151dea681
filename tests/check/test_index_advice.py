"""Parsing of generic plans into index suggestions (pure logic, canned EXPLAIN output)."""

from __future__ import annotations

from stackwatch.check.index_advice import (
    Column,
    ScanFilter,
    candidates,
    is_plannable_select,
    parameter_count,
    scans_to_index,
    suggest_index,
    without_typed_literals,
)


def _scan(filter_text: str, alias: str = "o", table: str = "orders") -> ScanFilter:
    return ScanFilter("public", table, alias, filter_text, 100.0)


def test_equality_columns_lead_then_one_range_column() -> None:
    suggestion = suggest_index(_scan("((o.created_at > $2) AND (o.customer_id = $1) AND (o.total < $3))"))
    assert suggestion is not None
    assert suggestion.columns == ("customer_id", "created_at")
    assert suggestion.sql() == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id, created_at);"


def test_casts_and_quoted_identifiers_are_understood() -> None:
    suggestion = suggest_index(_scan('((x."Email")::text = $1)', alias="x", table="Users"))
    assert suggestion is not None
    assert suggestion.sql() == 'CREATE INDEX CONCURRENTLY ON public."Users" ("Email");'


def test_or_filters_and_expressions_get_no_single_index() -> None:
    assert suggest_index(_scan("((o.status = $1) OR (o.customer_id = $2))")) is None
    assert suggest_index(_scan("(lower(o.status) = $1)")) is None


def test_other_aliases_are_not_this_tables_columns() -> None:
    suggestion = suggest_index(_scan("((o.customer_id = c.id) AND (c.name = $1) AND (o.status = $2))"))
    assert suggestion is not None and suggestion.columns == ("customer_id", "status")


def test_seq_scans_with_filters_are_found_in_nested_plans() -> None:
    plan = {"Node Type": "Hash Join", "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "s", "Alias": "o",
         "Filter": "(o.customer_id = $1)", "Plan Rows": 5},
        {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "customers",
                                          "Schema": "s", "Alias": "c", "Plan Rows": 9}]},
    ]}
    assert scans_to_index(plan) == [ScanFilter("s", "orders", "o", "(o.customer_id = $1)", 5.0)]


def test_only_single_selects_are_planned() -> None:
    assert is_plannable_select("/* app */ SELECT * FROM t WHERE a = $1")
    assert not is_plannable_select("UPDATE t SET a = $1")
    assert not is_plannable_select("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")
    assert not is_plannable_select("SELECT * INTO t2 FROM t")
    assert not is_plannable_select("SELECT 1; DROP TABLE t")
    assert parameter_count("SELECT * FROM t WHERE a = $1 AND b IN ($2, $10)") == 10


def test_like_and_ilike_get_a_trigram_candidate_never_a_btree() -> None:
    scan = _scan("((o.note ~~ $1) AND (o.region ~~* $2))")
    assert suggest_index(scan) is None
    assert [c.sql() for c in candidates(scan)] == [
        "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY ON public.orders USING gin (note gin_trgm_ops);",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY ON public.orders USING gin (region gin_trgm_ops);",
    ]
    mixed = candidates(_scan("((o.customer_id = $1) AND (o.note ~~ $2))"))
    assert [c.method for c in mixed] == ["btree", "gin"] and mixed[0].columns == ("customer_id",)


def test_typed_literals_become_casts() -> None:
    assert without_typed_literals("SELECT now() - interval $2") == "SELECT now() - $2::interval"
    assert (without_typed_literals("SELECT 1 WHERE ts > timestamp with time zone $1 AND d = DATE $3")
            == "SELECT 1 WHERE ts > $1::timestamp with time zone AND d = $3::DATE")
    for untouched in ("SELECT extract($3 FROM now())", "SELECT t.date $1", "SELECT a FROM t LIMIT $1"):
        assert without_typed_literals(untouched) == untouched


def test_constant_predicates_make_a_partial_index_first() -> None:
    scan = _scan("(o.active AND (o.deleted_at IS NULL) AND (NOT o.archived) AND (o.email = $1))")
    first = candidates(scan)[0]
    assert first.sql() == ("CREATE INDEX CONCURRENTLY ON public.orders (email) "
                           "WHERE active AND deleted_at IS NULL AND NOT archived;")
    only = candidates(_scan("(NOT o.done)"))[0]
    assert only.sql() == "CREATE INDEX CONCURRENTLY ON public.orders (done) WHERE NOT done;"


def test_the_sort_key_above_a_scan_joins_the_index() -> None:
    plan = {"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Sort Key": ["o.created_at DESC", "o.id"],
                                              "Plans": [{"Node Type": "Seq Scan", "Relation Name": "orders",
                                                         "Alias": "o", "Filter": "(o.user_id = $1)",
                                                         "Plan Rows": 30}]}]}
    [scan] = scans_to_index(plan)
    assert scan.order == (("created_at", "DESC"), ("id", ""))
    assert candidates(scan)[0].sql() == "CREATE INDEX CONCURRENTLY ON public.orders (user_id, created_at DESC, id);"
    # a sort on an expression, or on another table's column, is not served by this table's index
    expression = {**plan["Plans"][0], "Sort Key": ["lower(o.name)"]}
    assert scans_to_index(expression)[0].order == ()


def test_an_index_scan_is_only_news_when_a_limited_sort_sits_on_it() -> None:
    index_scan = {"Node Type": "Bitmap Heap Scan", "Relation Name": "events", "Alias": "e",
                  "Recheck Cond": "(e.account_id = $1)", "Plan Rows": 1500,
                  "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "events_account"}]}
    sort = {"Node Type": "Sort", "Sort Key": ["e.at DESC"], "Plans": [index_scan]}
    assert scans_to_index(sort) == []  # sorting every match is the result: no LIMIT to stop early
    [scan] = scans_to_index({"Node Type": "Limit", "Plans": [sort]})
    assert scan.indexed and [c.sql() for c in candidates(scan)] == [
        "CREATE INDEX CONCURRENTLY ON public.events (account_id, at DESC);"]


def test_operators_pick_gin_gist_or_hash_by_the_columns_kind() -> None:
    kinds = {"attrs": Column("jsonb"), "tags": Column("array"), "during": Column("range"),
             "spot": Column("geometric"), "token": Column("scalar", 160.0), "code": Column("scalar", 8.0)}

    def methods(filter_text: str) -> list[str]:
        return [c.method for c in candidates(_scan(filter_text), kinds, hash_min_width=100)]

    assert methods("(o.attrs @> $1)") == methods("(o.attrs ? $1)") == ["gin"]
    assert methods("(o.tags && $1)") == ["gin"]
    assert methods("(o.during && tstzrange($1, $2))") == ["gist"]
    assert methods("(o.spot <@ box(point($1, $2), point($3, $4)))") == ["gist"]
    assert methods("(o.token = $1)") == ["hash", "btree"]
    assert methods("(o.code = $1)") == ["btree"]  # narrow keys: a B-tree is as small and serves ranges too
    assert methods("((o.token = $1) AND (o.code = $2))") == ["btree"]  # a Hash index serves one column


def test_a_skewed_column_s_parameter_is_found_and_substituted() -> None:
    from stackwatch.check.index_advice import (
        parameter_equalities,
        rare_value,
        skewed_candidate,
        sql_literal,
        with_parameter,
    )

    scan = _scan("((o.status = $2) AND ((o.region)::text = $1) AND (o.total > $3) AND (x.y = $4))")
    assert parameter_equalities(scan) == [("status", 2), ("region", 1)]
    assert parameter_equalities(_scan("((o.status = $1) OR (o.region = $2))")) == []
    assert rare_value(["done", "pending", "failed"], [0.95, 0.03, 0.02], 0.9) == ("pending", 0.03)
    assert rare_value(["t", "f"], [0.6, 0.4], 0.9) is None and rare_value(["t"], [1.0], 0.9) is None
    literal = sql_literal("pending", "text")
    assert (literal, sql_literal("t", "boolean"), sql_literal("7", "integer")) == ("'pending'", "true", "'7'::integer")
    assert sql_literal("o'k", "character varying(20)") == "'o''k'"
    # $2 goes, $3 and $12 move down: PREPARE cannot type a parameter nothing references
    assert with_parameter("SELECT 1 FROM t WHERE a = $1 AND s = $2 AND b > $3 AND c = $12", 2, literal) == \
        "SELECT 1 FROM t WHERE a = $1 AND s = ('pending') AND b > $2 AND c = $11"
    assert skewed_candidate(scan, "status", literal).sql() == \
        "CREATE INDEX CONCURRENTLY ON public.orders (region) WHERE status = 'pending';"
