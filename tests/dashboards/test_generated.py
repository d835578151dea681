"""The committed dashboard JSON is exactly what the sources generate (design principle 3)."""

from __future__ import annotations

import json
from pathlib import Path

from dashboards.generate import JSON_DIR, main, render_all, render_docs, stale, write_all
from stackwatch.core.text import markdown_cell


def test_committed_json_matches_the_sources() -> None:
    drift = stale()
    assert drift == [], f"dashboards/json is out of date for {drift}: run `python -m dashboards.generate`"


def test_generation_is_deterministic() -> None:
    assert render_all() == render_all()


def test_write_all_then_check_round_trips(tmp_path: Path) -> None:
    docs = tmp_path / "dashboards.md"
    written = write_all(tmp_path, docs)
    assert sorted(written) == sorted([*(p.name for p in JSON_DIR.glob("*.json")), "dashboards.md"])
    assert stale(tmp_path, docs) == []
    assert write_all(tmp_path, docs) == [], "a second run must change nothing"


def test_docs_list_every_panel_with_its_question() -> None:
    docs = render_docs()
    for text in render_all().values():
        board = json.loads(text)
        assert f"uid `{board['uid']}`" in docs
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert f"| {markdown_cell(panel['title'])} | " in docs, panel["title"]  # a title may hold ">"


def test_check_reports_an_edited_and_an_orphan_file(tmp_path: Path) -> None:
    docs = tmp_path / "dashboards.md"
    write_all(tmp_path, docs)
    edited = tmp_path / "stackwatch-redis.json"
    board = json.loads(edited.read_text())
    board["title"] = "edited by hand"
    edited.write_text(json.dumps(board))
    (tmp_path / "old-dashboard.json").write_text("{}")
    docs.write_text("stale\n")
    assert stale(tmp_path, docs) == ["dashboards.md", "old-dashboard.json", "stackwatch-redis.json"]


def test_check_command_exit_code() -> None:
    assert main(["--check"]) == 0
