"""``--format markdown`` as GitHub shows it: rendered by a real CommonMark parser with GFM tables."""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt

from stackwatch.check.items import APP_ITEMS, DELIVERY_ITEMS, POSTGRES_ITEMS, PROMETHEUS_ITEMS, REDIS_ITEMS
from tests.check.conftest import run_check
from tests.fixtures.procs import free_port


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def test_a_report_with_an_error_still_renders_its_table_and_redactions_literally(redis_factory: Any) -> None:
    cache = redis_factory(requirepass="cache-secret-77")
    outcome = run_check("--format", "markdown", "--redis-window", "0.2", "--redis-url", cache.url,
                        "--prometheus-url", f"http://ops:prom-secret-88@127.0.0.1:{free_port()}")
    assert outcome.code == 2 and "ops:***@" in outcome.out  # Prometheus is unreachable: an error line

    html = _html(outcome.out)
    # the error stays a blockquote of its own, the table after it is a table
    quote = re.search(r"<blockquote>(.*?)</blockquote>", html, re.S)
    assert quote and "cannot reach Prometheus" in quote[1] and "<table>" not in quote[1], html
    assert html.count("<table>") == 1 and "</blockquote>" in html.split("<table>")[0]
    rows = re.findall(r"<tr>", html.split("<tbody>")[1])
    items = len(POSTGRES_ITEMS + REDIS_ITEMS + PROMETHEUS_ITEMS + APP_ITEMS + DELIVERY_ITEMS)
    assert len(rows) == len(re.findall(r"(?m)^\| (?:✅|⚠️|❌|❔)", outcome.out)) == items
    # the redacted password reads as three asterisks, in the error and in the table alike
    assert "ops:***@127.0.0.1" in quote[1]
    assert "ops:***@127.0.0.1" in html.split("<table>")[1]
    errors = outcome.out.count("> **error:**")
    assert errors >= 1 and "<em>" not in html and html.count("<strong>") == errors  # only the errors' labels
    assert "prom-secret-88" not in outcome.out and "cache-secret-77" not in outcome.out


def test_markdown_cells_keep_code_spans_and_literal_punctuation() -> None:
    from stackwatch.check.model import Finding, Item, Status
    from stackwatch.check.render import render
    from stackwatch.check.runner import Report

    item = Item("pg.plans", "Database", "Query execution plans analyzed")
    evidence = "`SELECT * FROM t WHERE a = $1 OR b | c`: filter a_b *x* [y](z) <b> back\\slash ~~s~~"
    html = _html(render(Report([Finding(item, Status.WARN, evidence, "fix")]), "markdown", [], 0))
    cell = re.findall(r"<td>(.*?)</td>", html)[3]
    assert cell == ("<code>SELECT * FROM t WHERE a = $1 OR b | c</code>: filter a_b *x* [y](z) &lt;b&gt; "
                    "back\\slash ~~s~~"), cell
