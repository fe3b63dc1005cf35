"""The journeys package stays navigable: small folders, modules under 600 lines, documented names."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "journeys"
MAX_MODULES_PER_FOLDER = 12
MAX_LINES = 600


def modules() -> list[Path]:
    """Every Python module of the journeys package."""
    return sorted(PACKAGE.rglob("*.py"))


def test_no_folder_holds_more_than_twelve_modules() -> None:
    per_folder = Counter(path.parent.relative_to(ROOT) for path in modules())
    crowded = {str(folder): n for folder, n in per_folder.items() if n > MAX_MODULES_PER_FOLDER}
    assert crowded == {}


def test_no_module_is_over_six_hundred_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules()
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


def test_every_public_function_and_class_has_a_docstring() -> None:
    missing: list[str] = []
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        missing.extend(_undocumented(tree, str(path.relative_to(ROOT))))
    assert missing == []
