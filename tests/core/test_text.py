"""The one byte formatter and the one Markdown cell escaper every output uses."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from stackwatch.core.text import byte_size, markdown_cell


@pytest.mark.parametrize(("n_bytes", "shown"), [
    (0, "0 B"), (812, "812 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (2**20, "1 MiB"),
    (12_345_678, "11.8 MiB"), (1024**3, "1 GiB"), (5 * 1024**4, "5 TiB"), (3 * 1024**5, "3072 TiB"),
])
def test_byte_size_picks_the_largest_unit_with_one_decimal_at_most(n_bytes: float, shown: str) -> None:
    assert byte_size(n_bytes) == shown


def test_alert_thresholds_read_as_before() -> None:
    """The rule texts keep their wording: whole units print without a decimal."""
    from stackwatch.thresholds import POSTGRES

    assert byte_size(POSTGRES.unused_index_min_bytes) == "1 MiB"
    assert byte_size(POSTGRES.inactive_slot_wal_bytes) == "1 GiB"


@pytest.mark.parametrize("text", [
    "a | b", "password=*** and ***", "pg_stat_statements_calls", "<script>x</script>", "[link](http://x)",
    "`code | span`", "~~gone~~", "two\nlines", "back\\slash",
])
def test_markdown_cell_renders_as_the_literal_text_in_one_cell(text: str) -> None:
    table = f"| a | b |\n|---|---|\n| {markdown_cell(text)} | end |\n"
    tokens = MarkdownIt("commonmark").enable("table").parse(table)
    cells = [t for t in tokens if t.type == "inline"]
    assert len(cells) == 4, f"the row split into {len(cells) - 2} cells"
    rendered = cells[2].children or []
    plain = "".join(c.content if c.type in ("text", "code_inline") else "\n" if c.type == "html_inline" else ""
                    for c in rendered)
    assert [c.type for c in rendered if c.type in ("em_open", "strong_open", "link_open", "s_open")] == []
    expected = text.replace("`", "").replace("\\|", "|")
    assert plain == expected
    assert cells[3].content == "end"
