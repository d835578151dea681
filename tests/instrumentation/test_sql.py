"""Statement fingerprints (pure parsing, canned input) and the route-template cap."""

from __future__ import annotations

import pytest

from stackwatch.instrumentation.routes import OTHER, UNMATCHED, RouteTemplates
from stackwatch.instrumentation.sql import describe


@pytest.mark.parametrize(
    ("statement", "operation", "fingerprint"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT", "select * from t where id = ?"),
        ("select *\n  from t\twhere id = $1", "SELECT", "select * from t where id = ?"),
        ("SELECT a FROM b WHERE x IN (1, 2, 3) AND y = 'it''s'", "SELECT", "select a from b where x in (...) and y = ?"),
        ("INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s)", "INSERT", "insert into t (a, b) values (...)"),
        ("SELECT * FROM t1 WHERE a = %(a)s AND b::int = :b", "SELECT", "select * from t1 where a = ? and b::int = ?"),
        ("/* app */ UPDATE t SET x = 1.5e3 -- trailing", "UPDATE", "update t set x = ?"),
        ("select $$secret$$, $tag$also secret$tag$", "SELECT", "select ?, ?"),
        ("SELECT E'x\\n' FROM t WHERE id = ANY(ARRAY[1,2,3])", "SELECT", "select ? from t where id = any(array[...])"),
        ("  ", "OTHER", ""),
    ],
)
def test_fingerprints_hide_literals(statement, operation, fingerprint):
    assert describe(statement) == (operation, fingerprint)


def test_fingerprint_never_contains_the_literal():
    _, fingerprint = describe("SELECT * FROM users WHERE email = 'alice@example.com' AND pin = 1234")
    assert "alice" not in fingerprint and "1234" not in fingerprint


class _Route:
    def __init__(self, path: str) -> None:
        self.path = path
        self.endpoint = object()


def test_route_templates_are_capped():
    templates = RouteTemplates(limit=3)
    routes = [_Route(f"/r{i}") for i in range(5)]
    seen = [templates.template({"route": r, "root_path": ""}, None, "") for r in routes]
    assert seen == ["/r0", "/r1", "/r2", OTHER, OTHER]
    assert templates.template({"route": routes[0], "root_path": ""}, None, "") == "/r0"
    assert templates.template({"root_path": ""}, None, "") == UNMATCHED
    outer = _Route("/outer")
    assert templates.template({"route": outer}, outer, "") == UNMATCHED  # set before this app routed


def test_outgoing_headers_carry_the_current_trace(provider):
    from stackwatch.instrumentation import outgoing_headers

    with provider.get_tracer("t").start_as_current_span("client") as span:
        headers = outgoing_headers({"accept": "application/json"})
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert headers["accept"] == "application/json"
    assert headers["traceparent"].startswith(f"00-{trace_id}-")
