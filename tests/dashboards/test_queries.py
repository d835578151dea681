"""Every panel query parses as PromQL (promtool) once Grafana's variables are substituted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dashboards.queries import DEFAULT_INTERVALS, panel_queries, substitute


def test_panel_queries_cover_every_target() -> None:
    queries = list(panel_queries())
    assert len(queries) > 100
    assert {q.uid for q in queries} == {"stackwatch-checklist", "stackwatch-service", "stackwatch-postgres",
                                        "stackwatch-redis", "stackwatch-processes", "stackwatch-jobs",
                                        "stackwatch-host"}
    assert all(q.expr and q.title for q in queries)
    # a few documented exceptions, not a blanket excuse
    assert 0 < sum(bool(q.empty_reason) for q in queries) < 20


def test_substitute_defaults_to_all_and_concrete_intervals() -> None:
    expr = 'sum(rate(x{job=~"$job",instance=~"${instance}"}[$__rate_interval])) / ' \
           'sum(rate(x{job=~"$job"}[$__range]))'
    assert substitute(expr) == (f'sum(rate(x{{job=~".*",instance=~".*"}}[{DEFAULT_INTERVALS["__rate_interval"]}])) / '
                                f'sum(rate(x{{job=~".*"}}[{DEFAULT_INTERVALS["__range"]}]))')
    assert substitute('x{job=~"$job"}', {"job": "demo"}) == 'x{job=~"demo"}'
    assert "$" not in "".join(substitute(q.expr) for q in panel_queries())


def test_every_query_parses(promtool: str, tmp_path: Path) -> None:
    rules = [{"record": f"stackwatch:dashboard_query:{i}", "expr": substitute(q.expr)}
             for i, q in enumerate(panel_queries())]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
