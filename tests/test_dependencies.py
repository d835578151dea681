"""Dependencies point one way: ``check`` and the instrumentation never import the exporter's code,
and ``stackwatch.core`` (what they share with it) imports none of the three.

Read from the source with ``ast`` (every ``import``, also those inside functions, relative ones
resolved), so an import that only runs on some path cannot slip through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: package -> its folder, and what it must not import
RULES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "stackwatch.check": (ROOT / "src/stackwatch/check", ("stackwatch.exporters",)),
    "stackwatch.instrumentation": (ROOT / "instrumentation", ("stackwatch.exporters",)),
    "stackwatch.core": (ROOT / "src/stackwatch/core",
                        ("stackwatch.exporters", "stackwatch.check", "stackwatch.instrumentation")),
}


def imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` (the module ``module``) imports, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # from pkg import module
    return names


def _violations(package: str) -> list[str]:
    folder, forbidden = RULES[package]
    found = []
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder).with_suffix("")
        module = ".".join([package, *rel.parts]).removesuffix(".__init__")
        for name in sorted(imported_modules(path, module)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_point_one_way(package: str) -> None:
    folder, _ = RULES[package]
    assert any(folder.rglob("*.py")), f"{folder} holds no module: the rule would check nothing"
    assert _violations(package) == []


def test_the_scan_sees_relative_lazy_and_from_imports(tmp_path: Path) -> None:
    """The scanner itself: each form of importing the exporter is caught."""
    source = tmp_path / "postgres.py"
    source.write_text("from ...exporters.postgres import activity\n"
                      "def lazy():\n    from stackwatch.exporters import main\n"
                      "import stackwatch.exporters.redact as r\n"
                      "from stackwatch import exporters\n"
                      "from .model import Item\n")
    names = imported_modules(source, "stackwatch.check.postgres")
    assert {"stackwatch.exporters.postgres", "stackwatch.exporters", "stackwatch.exporters.redact",
            "stackwatch.check.model"} <= names
    assert "stackwatch.exporters.main" in names
