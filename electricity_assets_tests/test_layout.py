"""The layout's one-way arrows, read from the source (no import runs): the code location and the
dashboard never import the local-stack tooling, and the pure layers never import Dagster."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PURE = ("sources", "features", "modeling", "streaming")


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at top level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def importers(package: str, forbidden: str) -> list[str]:
    """Files under `package` importing `forbidden` or one of its submodules."""
    return sorted(str(path.relative_to(REPO)) for path in (REPO / package).rglob("*.py")
                  if any(name == forbidden or name.startswith(f"{forbidden}.")
                         for name in imported_modules(path)))


@pytest.mark.parametrize("package", ["electricity_assets", "dashboard"])
def test_what_ships_never_imports_the_local_stack(package: str) -> None:
    assert importers(package, "devstack") == []


@pytest.mark.parametrize("layer", PURE)
def test_the_pure_layers_never_import_dagster(layer: str) -> None:
    assert importers(f"electricity_assets/{layer}", "dagster") == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from devstack.stack import main\n    import dagster as dg\n")
    assert imported_modules(module) == {"devstack.stack", "dagster"}
