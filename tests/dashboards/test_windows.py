"""Rates of families the exporter polls on its slow tier span at least two polls.

The exporter refreshes pg_stat_statements, tables, indexes and the checkpointer every 300 s by
default and serves the same snapshot to every scrape in between: ``rate()`` over a window
shorter than ``SLOW_TIER_WINDOW`` is 0 between polls (NaN in a ratio) and a spike at each poll.
The slow-tier counters are read from docs/metrics.md, whose sections name their tier.
"""

from __future__ import annotations

import re
from pathlib import Path

from alerts.catalog import alerts, records
from dashboards.queries import panel_queries
from stackwatch.thresholds import SLOW_TIER_WINDOW

ROOT = Path(__file__).resolve().parents[2]
_RANGE_FUNCTION = re.compile(r"\b(?:rate|irate|increase|delta)\(\s*([a-zA-Z_:][\w:]*)\s*(?:\{[^}]*\})?\s*\[([^\]]+)\]")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(window: str) -> float:
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", window))


def slow_tier_counters() -> set[str]:
    """Counter families of the sections of docs/metrics.md polled on the slow tier only."""
    families: set[str] = set()
    for section in (ROOT / "docs" / "metrics.md").read_text().split("\n### ")[1:]:
        heading, _, body = section.partition("\n")
        if "slow tier" not in heading or "fast" in heading:
            continue
        for line in body.splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 3 and "counter" in cells[2]:
                families.update(re.findall(r"`([a-z_]+)`", cells[1]))
    return families


def test_the_slow_tier_counters_are_found() -> None:
    found = slow_tier_counters()
    assert {"pg_stat_statements_calls_total", "pg_stat_user_tables_seq_scan",
            "pg_stat_bgwriter_checkpoints_timed_total"} <= found


def test_rates_of_slow_tier_counters_span_two_polls() -> None:
    slow, minimum = slow_tier_counters(), _seconds(SLOW_TIER_WINDOW)
    exprs = [(f"{q.uid} / {q.title}", q.expr) for q in panel_queries()]
    exprs += [(rule.alert, rule.expr) for rule in alerts()] + [(rule.record, rule.expr) for rule in records()]
    short = [f"{where}: {name}[{window}]" for where, expr in exprs
             for name, window in _RANGE_FUNCTION.findall(expr)
             if name in slow and window != "$__range" and _seconds(window) < minimum]
    assert not short, "rate window shorter than SLOW_TIER_WINDOW on a slow-tier family:\n" + "\n".join(short)
