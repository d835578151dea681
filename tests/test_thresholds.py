"""Threshold overrides without editing thresholds.py (``STACKWATCH_THRESHOLDS_FILE``).

Run in fresh interpreters, because the values are applied when ``stackwatch.thresholds`` is first
imported, by every entry point alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], overrides: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STACKWATCH_THRESHOLDS_FILE": str(overrides)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_overrides_reach_the_generated_rules_and_the_check(tmp_path: Path) -> None:
    overrides = tmp_path / "ours.toml"
    overrides.write_text('rate_window = "10m"\n[postgres]\nconnection_saturation_warning = 0.7\n'
                         '[for]\npostgres_down = "3m"\n')
    out = tmp_path / "out"
    generated = _run(["-m", "alerts.generate", "--root", str(out)], overrides)
    assert generated.returncode == 0, generated.stderr
    rules = (out / "alerts/rules/alerts.yml").read_text()
    recording = (out / "alerts/rules/recording.yml").read_text()
    assert "> 0.7" in rules and "for: 3m" in rules and "[10m]" in recording
    default = (ROOT / "alerts/rules/alerts.yml").read_text()
    assert "> 0.7" not in default and "[10m]" not in (ROOT / "alerts/rules/recording.yml").read_text()
    seen = _run(["-c", "from stackwatch.check import postgres; from stackwatch.thresholds import POSTGRES; "
                       "print(POSTGRES.connection_saturation_warning)"], overrides)
    assert seen.stdout.strip() == "0.7", seen.stderr


@pytest.mark.parametrize(("text", "named"), [
    ("[postgres]\nconection_saturation_warning = 0.7\n", "conection_saturation_warning"),
    ('[postgres]\nconnection_saturation_warning = "high"\n', "postgres.connection_saturation_warning"),
    ("[postgress]\nx = 1\n", "postgress"),
    ("[http]\nn_plus_one_repeat_count = 2.5\n", "http.n_plus_one_repeat_count"),
    ("rate_window = [", "not valid TOML"),
])
def test_a_bad_override_file_is_a_clear_error(tmp_path: Path, text: str, named: str) -> None:
    overrides = tmp_path / "bad.toml"
    overrides.write_text(text)
    for args in (["-m", "stackwatch.cli", "check", "--prometheus-url", "http://127.0.0.1:1"],
                 ["-m", "alerts.generate", "--check"],
                 ["-m", "dashboards.generate", "--check"]):
        result = _run(args, overrides)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert named in result.stderr and str(overrides) in result.stderr
        assert "Traceback" not in result.stderr


def test_a_missing_override_file_is_named(tmp_path: Path) -> None:
    result = _run(["-m", "stackwatch.cli", "check", "--prometheus-url", "http://127.0.0.1:1"], tmp_path / "nope.toml")
    assert result.returncode == 1 and "nope.toml" in result.stderr and "Traceback" not in result.stderr
