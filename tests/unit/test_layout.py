"""The layout stays readable: small folders, modules under 600 lines, documented public names."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "projections", "streams", "journeys")
MAX_MODULES_PER_FOLDER = 12
MAX_LINES = 600


def modules(package: str) -> list[Path]:
    """Every Python module of one of the four packages."""
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_no_folder_holds_more_than_twelve_modules(package: str) -> None:
    per_folder = Counter(path.parent.relative_to(ROOT) for path in modules(package))
    crowded = {str(folder): n for folder, n in per_folder.items() if n > MAX_MODULES_PER_FOLDER}
    assert crowded == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_six_hundred_lines(package: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules(package)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _undocumented(tree: ast.Module, where: str) -> list[str]:
    missing = [] if ast.get_docstring(tree) else [f"{where} (module)"]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if not node.name.startswith("_") and not ast.get_docstring(node):
                missing.append(f"{where}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                missing.extend(
                    f"{where}:{item.lineno} {node.name}.{item.name}"
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    and not item.name.startswith("_")
                    and not ast.get_docstring(item)
                )
    return missing


def test_every_public_function_and_class_of_journeys_has_a_docstring() -> None:
    missing: list[str] = []
    for path in modules("journeys"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        missing.extend(_undocumented(tree, str(path.relative_to(ROOT))))
    assert missing == []
