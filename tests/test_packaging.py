"""The wheel: built from this checkout, installed into a fresh virtual environment, imported.

Catches a sub-package missing from pyproject's explicit package list and imports that only work
from the source tree.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"stackwatch": ROOT / "src" / "stackwatch", "stackwatch/exporters": ROOT / "exporters",
           "stackwatch/instrumentation": ROOT / "instrumentation"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, timeout=300)
    return next(out.glob("stackwatch-*.whl"))


def test_wheel_contains_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder)
            if "__pycache__" in rel.parts or (prefix == "stackwatch" and rel.parts[0] in ("exporters", "instrumentation")):
                continue
            expected.add(f"{prefix}/{rel.as_posix()}")
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel (add the package to pyproject's list): {missing}"
    assert "stackwatch/py.typed" in names


def test_wheel_installs_and_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The README's install line for a built wheel, as written (name, version and extras).
    readme_line = f"pip install 'dist/{wheel.name}[fastapi,sentry]'"
    assert readme_line in (ROOT / "README.md").read_text()
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{wheel}[fastapi,sentry]"], check=True, timeout=600)
    code = ("import stackwatch.exporters.postgres, stackwatch.exporters.main, stackwatch.instrumentation, "
            "stackwatch.thresholds; print(stackwatch.exporters.postgres.__file__)")
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120).stdout
    assert str(env_dir) in out  # imported from the wheel, not from the checkout
    help_text = subprocess.run([str(env_dir / "bin" / "stackwatch"), "exporter", "--help"], check=True,
                               capture_output=True, text=True, timeout=60).stdout
    assert "--postgres-dsn" in help_text and "STACKWATCH_POSTGRES_DSN_FILE" in help_text


def test_the_readme_install_line_for_a_clone_resolves(tmp_path: Path) -> None:
    assert "pip install './stackwatch[fastapi,sentry]'" in (ROOT / "README.md").read_text()
    clone = tmp_path / "stackwatch"
    clone.symlink_to(ROOT)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation",
                           "--report", "-", "-q", "./stackwatch[fastapi,sentry]"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert '"requested_extras": [' in done.stdout and '"sentry"' in done.stdout
