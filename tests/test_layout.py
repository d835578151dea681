"""The layout tools rely on: nothing at the repository root shadows the installed ``stackwatch``.

The package is assembled from mapped folders (``src/stackwatch``, ``exporters``, ``instrumentation``);
the editable install is strict (a real tree mypy and IDEs follow), so what runs from the
repository root is what a plain ``pip install .`` gives.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
SITE = Path(subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip())


def _modules() -> set[str]:
    """Every module of the distribution, from the mapped source folders (none nests another)."""
    names = set()
    for package, folder in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if "__pycache__" not in rel.parts:
                parts = [package, *rel.parts]
                names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_no_root_folder_shadows_the_package() -> None:
    assert not (ROOT / "stackwatch").exists(), "a root stackwatch/ folder hides the installed package"
    for package, folder in PACKAGE_DIRS.items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{package} maps to {folder}, which is no package"


def test_editable_install_is_strict() -> None:
    finders = sorted(p.name for p in SITE.glob("__editable___stackwatch*finder.py"))
    assert not finders, f"lenient editable install ({finders}): run `make deps`"


def test_imports_and_cli_work_from_the_repository_root() -> None:
    code = ("import stackwatch.exporters, stackwatch.instrumentation, stackwatch.check, stackwatch.thresholds; "
            "print(stackwatch.exporters.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert out.strip().endswith("exporters/__init__.py")
    help_text = subprocess.run([sys.executable, "-m", "stackwatch.cli", "--help"], cwd=ROOT, check=True,
                               capture_output=True, text=True, timeout=120).stdout
    assert "exporter" in help_text and "check" in help_text


def test_mypy_sees_every_module_and_is_clean() -> None:
    """``mypy -p stackwatch`` (strict, configured in pyproject.toml) checks the whole package."""
    result = subprocess.run([sys.executable, "-m", "mypy", "-p", "stackwatch"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    checked = int(re.search(r"(?:checked|in) (\d+) source files", result.stdout).group(1))  # type: ignore[union-attr]
    assert checked == len(_modules()), result.stdout
