"""The statement classifier behind the ``command`` label, on pg_stat_statements' own texts."""

from __future__ import annotations

import pytest

from stackwatch.core.postgres.commands import COMMANDS, MARKER, classify, marked


@pytest.mark.parametrize(("text", "command"), [
    ("SELECT * FROM orders WHERE id = $1", "select"),
    ("  -- why\n/* a comment */ select 1", "select"),
    ("(SELECT count(*) FROM items WHERE v = $1 AND v > $2)", "select"),  # PL/pgSQL RETURN (...)
    ("VALUES ($1, $2)", "select"),
    ("WITH recent AS (SELECT id FROM orders WHERE ts > $1) SELECT count(*) FROM recent", "select"),
    ("WITH gone AS (DELETE FROM orders WHERE ts < $1 RETURNING id) SELECT count(*) FROM gone", "select"),
    ("WITH src AS (SELECT $1 AS a, 'select' AS b) INSERT INTO t SELECT * FROM src", "insert"),
    ("INSERT INTO items SELECT g FROM generate_series($1, $2) g", "insert"),
    ("UPDATE orders SET status = $1 WHERE id = $2", "update"),
    ("DELETE FROM orders WHERE id = $1", "delete"),
    ("VACUUM ANALYZE orders", "utility"),
    ("ANALYZE orders", "utility"),
    ("CREATE INDEX CONCURRENTLY ON orders (status)", "utility"),
    ("COPY public.orders (id, status) TO stdout", "utility"),
    ("DO $$BEGIN PERFORM pg_sleep(1); END$$", "utility"),
    ("CALL nightly($1)", "other"),
    ("<insufficient privilege>", "other"),
    ("", "other"),
    (MARKER + " SELECT 1 FROM orders", "monitoring"),
    ("SELECT datname, numbackends FROM pg_stat_database", "monitoring"),
    ("SELECT current_setting($1)", "monitoring"),
])
def test_classify(text: str, command: str) -> None:
    assert classify(text) == command
    assert command in COMMANDS


def test_a_monitoring_roles_statement_is_monitoring_whatever_its_text() -> None:
    assert classify("SELECT * FROM orders", monitoring_role=True) == "monitoring"


def test_marked_statements_are_recognized_as_stackwatchs_own() -> None:
    assert classify(marked("SELECT * FROM orders")) == "monitoring"
