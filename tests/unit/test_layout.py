"""The layout stays readable: small folders, no giant modules (schemas, projections, streams)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "projections", "streams")
MAX_MODULES_PER_FOLDER = 12
MAX_LINES_PER_MODULE = 600


def folders(package: str) -> list[Path]:
    return sorted({path.parent for path in (ROOT / package).rglob("*.py")})


@pytest.mark.parametrize("package", PACKAGES)
def test_no_folder_holds_more_than_twelve_modules(package: str) -> None:
    crowded = {
        str(folder.relative_to(ROOT)): count
        for folder in folders(package)
        if (count := len(list(folder.glob("*.py")))) > MAX_MODULES_PER_FOLDER
    }
    assert crowded == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_six_hundred_lines(package: str) -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES_PER_MODULE
    }
    assert long == {}
