"""README.md stays true: its generated tables match the code, its quick start names real things."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _render_module():
    spec = importlib.util.spec_from_file_location("render_readme", ROOT / "scripts" / "render_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_are_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert _render_module().render(readme) == readme, "README.md is stale: run python scripts/render_readme.py"


def test_every_exporter_flag_and_variable_is_documented() -> None:
    from stackwatch.exporters.main import all_options

    readme = (ROOT / "README.md").read_text()
    for opt in all_options():
        assert f"`{opt.flag}`" in readme and f"`{opt.env}`" in readme


def test_quick_start_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up -d" in readme and "make test" in readme
    assert (ROOT / "docker-compose.yml").is_file()
    assert "test:" in (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
