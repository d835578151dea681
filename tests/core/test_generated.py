"""The one "write, or with --check report" behaviour every generator shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackwatch.core.generated import stale, write, write_or_check


def test_write_then_check_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {tmp_path / "a.yml": "a\n", tmp_path / "deep" / "b.md": "b\n"}
    assert write_or_check(files, False, "make it", tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == ["wrote a.yml", "wrote deep/b.md"]
    assert write(files) == [], "a second run must change nothing"
    assert write_or_check(files, True, "make it", tmp_path) == 0
    assert capsys.readouterr().err == ""


def test_check_names_stale_missing_and_orphan_files_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yml").write_text("edited by hand\n")
    (tmp_path / "old.json").write_text("{}\n")
    files = {tmp_path / "a.yml": "a\n", tmp_path / "b.md": "b\n"}
    assert stale(files) == list(files)
    assert write_or_check(files, True, "python -m x.generate", tmp_path, [tmp_path / "old.json"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{name} is out of date: run `python -m x.generate`" for name in ("a.yml", "b.md", "old.json")]
    assert (tmp_path / "a.yml").read_text() == "edited by hand\n" and not (tmp_path / "b.md").exists()
