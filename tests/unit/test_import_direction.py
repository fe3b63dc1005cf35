"""Dependencies point one way: schemas <- projections <- streams <- journeys.

Every module of the four packages is parsed with `ast` (nothing is imported). A package may
import those to its left, never one to its right. `projections` is the pure core that the
stream processor, replay and the CLI all fold with: it must not touch I/O, the network, the
process or the wall clock (time-based rules take an explicit `as_of`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS: tuple[str, ...] = ("schemas", "projections", "streams", "journeys")
"""Left to right: each package may import only the packages before it."""

FORBIDDEN_IN_PROJECTIONS = frozenset(
    {
        "aiokafka",
        "asyncio",
        "concurrent",
        "faust",
        "http",
        "io",
        "mode",
        "multiprocessing",
        "os",
        "pathlib",
        "random",
        "requests",
        "rocksdict",
        "select",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "ssl",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib",
        "uuid",
    }
)
"""Top-level modules that mean I/O, concurrency, the process, randomness or the clock."""

CLOCK_ATTRIBUTES = frozenset({"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"})
"""`datetime.now()`, `date.today()`, ...: reading the wall clock, whatever the receiver."""

IO_BUILTINS = frozenset({"open", "input", "print", "breakpoint"})
"""Builtins that do I/O without importing anything."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement, resolved to an absolute module name."""

    module: str
    path: Path
    line: int

    @property
    def top(self) -> str:
        """The top-level package imported."""
        return self.module.split(".", 1)[0]


def module_name(path: Path, root: Path = ROOT) -> str:
    """The dotted module name of a source file under the project root."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, path: Path, is_package: bool = False) -> list[Import]:
    """Every module a source file imports, relative imports resolved against `module`."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, path, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                # `from . import x` in a package's __init__ is relative to the package itself.
                drop = node.level - 1 if is_package else node.level
                anchor = base[: len(base) - drop] if drop else base
                target = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                target = node.module or ""
            found.append(Import(target, path, node.lineno))
            found.extend(
                Import(f"{target}.{alias.name}", path, node.lineno)
                for alias in node.names
                if alias.name != "*"
            )
    return found


def layer_violations(imports: list[Import], package: str) -> list[str]:
    """Imports of a package to the right of `package` in `LAYERS`."""
    allowed_right = LAYERS.index(package)
    return sorted(
        {
            f"{imp.path.relative_to(ROOT) if imp.path.is_absolute() else imp.path}:{imp.line} "
            f"imports {imp.module}"
            for imp in imports
            if imp.top in LAYERS and LAYERS.index(imp.top) > allowed_right
        }
    )


def impurities(source: str, path: Path) -> list[str]:
    """I/O or clock modules imported, and clock or I/O calls made, by one source file."""
    tree = ast.parse(source, filename=str(path))
    problems: list[str] = []
    for imp in imports_of(source, "projections.x", path):
        if imp.top in FORBIDDEN_IN_PROJECTIONS:
            problems.append(f"{path}:{imp.line} imports {imp.module}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_ATTRIBUTES:
            problems.append(f"{path}:{node.lineno} reads the clock ({node.attr})")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in IO_BUILTINS
        ):
            problems.append(f"{path}:{node.lineno} calls {node.func.id}()")
    return problems


def sources(package: str) -> Iterator[Path]:
    """Every .py file of a package, sub-packages included."""
    yield from sorted((ROOT / package).rglob("*.py"))


# --- the checker itself catches what it should ---------------------------------------------


def test_relative_imports_are_resolved_to_their_package() -> None:
    found = imports_of(
        "from .. import ledger\nfrom ..flags import Flag\nfrom . import slots\n",
        "projections.rules.asks",
        Path("projections/rules/asks.py"),
    )
    modules = {imp.module for imp in found}
    assert {"projections.ledger", "projections.flags", "projections.rules.slots"} <= modules
    in_init = imports_of(
        "from . import asks\n",
        "projections.rules",
        Path("projections/rules/__init__.py"),
        is_package=True,
    )
    assert "projections.rules.asks" in {imp.module for imp in in_init}


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("schemas", "import projections.view\n"),
        ("schemas", "from journeys.cli import main\n"),
        ("projections", "from streams import state\n"),
        ("projections", "def f():\n    import journeys\n"),
        ("streams", "from journeys import settings\n"),
    ],
)
def test_the_checker_catches_an_import_to_the_right(package: str, source: str) -> None:
    path = Path(f"{package}/bad.py")
    assert layer_violations(imports_of(source, f"{package}.bad", path), package)


@pytest.mark.parametrize(
    "source",
    [
        "from schemas.events import Event\n",
        "from projections.view import view\nimport schemas\n",
        "import orjson\nfrom datetime import datetime\n",
    ],
)
def test_the_checker_allows_imports_to_the_left(source: str) -> None:
    path = Path("streams/good.py")
    assert layer_violations(imports_of(source, "streams.good", path), "streams") == []


@pytest.mark.parametrize(
    "source",
    [
        "import os\n",
        "import os.path\n",
        "from pathlib import Path\n",
        "import asyncio\n",
        "from time import monotonic\n",
        "import rocksdict\n",
        "from datetime import datetime\nx = datetime.now()\n",
        "import datetime as dt\nx = dt.datetime.utcnow()\n",
        "from datetime import date\nx = date.today()\n",
        "from datetime import datetime as D\nclock = D.now\n",
        "with open('x') as f:\n    pass\n",
        "print('hello')\n",
    ],
)
def test_the_checker_catches_io_and_the_clock(source: str) -> None:
    assert impurities(source, Path("projections/bad.py"))


def test_the_checker_allows_pure_code() -> None:
    source = (
        "from datetime import datetime, timedelta\nimport hashlib\n"
        "def later(at: datetime) -> datetime:\n    return at + timedelta(hours=24)\n"
    )
    assert impurities(source, Path("projections/good.py")) == []


# --- the packages as they are --------------------------------------------------------------


@pytest.mark.parametrize("package", LAYERS)
def test_package_exists_with_modules(package: str) -> None:
    assert list(sources(package)), f"{package} has no modules"


@pytest.mark.parametrize("package", LAYERS)
def test_no_package_imports_one_to_its_right(package: str) -> None:
    violations: list[str] = []
    for path in sources(package):
        found = imports_of(
            path.read_text(encoding="utf-8"),
            module_name(path),
            path,
            is_package=path.name == "__init__.py",
        )
        violations.extend(layer_violations(found, package))
    assert violations == [], f"{package} must import only {LAYERS[: LAYERS.index(package)]}"


def test_projections_imports_only_schemas_of_the_four() -> None:
    tops: set[str] = set()
    for path in sources("projections"):
        found = imports_of(path.read_text(encoding="utf-8"), module_name(path), path)
        tops |= {imp.top for imp in found if imp.top in LAYERS}
    assert tops <= {"schemas", "projections"}
    assert "schemas" in tops


def test_projections_does_no_io_and_reads_no_clock() -> None:
    problems: list[str] = []
    for path in sources("projections"):
        problems.extend(impurities(path.read_text(encoding="utf-8"), path.relative_to(ROOT)))
    assert problems == []


# --- inside journeys: development tooling stays out of the product -----------------------------

DEV_TOOLING: dict[str, frozenset[str]] = {
    "journeys.bench": frozenset({"journeys.cli.bench"}),
    "journeys.devbroker": frozenset({"journeys.cli.up"}),
}
"""Development-only modules, and the one product module that may import each (its command)."""

NEVER: dict[str, str] = {"journeys.server": "journeys.cli"}
"""A package that must never import another: the server runs without the command line."""


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def is_dev_tooling(module: str) -> bool:
    """Whether a module is development tooling (the benchmark, the embedded broker)."""
    return any(_within(module, tool) for tool in DEV_TOOLING)


def tooling_violations(imports: list[Import], module: str) -> list[str]:
    """Imports of development tooling, or of a package `NEVER` forbids, by product module `module`."""
    problems: list[str] = []
    for imp in imports:
        for tool, allowed in DEV_TOOLING.items():
            if _within(imp.module, tool) and not is_dev_tooling(module) and module not in allowed:
                problems.append(f"{module}:{imp.line} imports {imp.module}")
        for package, forbidden in NEVER.items():
            if _within(module, package) and _within(imp.module, forbidden):
                problems.append(f"{module}:{imp.line} imports {imp.module}")
    return sorted(set(problems))


def _imports_of_file(path: Path) -> list[Import]:
    return imports_of(
        path.read_text(encoding="utf-8"),
        module_name(path),
        path,
        is_package=path.name == "__init__.py",
    )


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("journeys.server.api", "from journeys.bench.load import skewed_load\n"),
        ("journeys.cli.worker", "from journeys.devbroker import EmbeddedBroker\n"),
        ("streams.worker", "import journeys.devbroker\n"),
        ("journeys.cli.replay", "def f():\n    from journeys import bench\n"),
        ("journeys.server.serve", "from journeys.cli.errors import print_error\n"),
        ("journeys.server.web.pages", "from journeys.cli import app\n"),
    ],
)
def test_the_checker_catches_product_code_importing_tooling(module: str, source: str) -> None:
    path = Path(module.replace(".", "/") + ".py")
    assert tooling_violations(imports_of(source, module, path), module)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("journeys.cli.bench", "from journeys.bench.run import bench_command\n"),
        ("journeys.cli.up", "from journeys.devbroker import EmbeddedBroker\n"),
        ("journeys.bench.run", "from journeys.devbroker import EmbeddedBroker\n"),
        ("journeys.bench.phases", "from journeys.cli.errors import EXIT_OK\n"),
        ("journeys.cli.worker", "from journeys.server.serve import ApiService\n"),
    ],
)
def test_the_checker_allows_the_commands_their_tooling(module: str, source: str) -> None:
    path = Path(module.replace(".", "/") + ".py")
    assert tooling_violations(imports_of(source, module, path), module) == []


def test_product_code_never_imports_the_benchmark_or_the_embedded_broker() -> None:
    violations: list[str] = []
    for package in LAYERS:
        for path in sources(package):
            violations.extend(tooling_violations(_imports_of_file(path), module_name(path)))
    assert violations == []


def test_the_tooling_exists_where_the_rules_name_it() -> None:
    modules = {module_name(path) for package in LAYERS for path in sources(package)}
    for tool, allowed in DEV_TOOLING.items():
        assert any(_within(m, tool) for m in modules), tool
        assert allowed <= modules, allowed
    assert any(_within(m, "journeys.server") for m in modules)


# --- what production code may not reach for ----------------------------------------------------

LAUNCHER = "journeys.devbroker"
"""The throwaway broker for tests and demos: production code creates topics via streams.admin."""


def launcher_imports(imports: list[Import]) -> list[str]:
    """Imports of the embedded broker launcher."""
    return sorted(
        f"{imp.path}:{imp.line} imports {imp.module}"
        for imp in imports
        if imp.module == LAUNCHER or imp.module.startswith(LAUNCHER + ".")
    )


def test_the_checker_catches_an_import_of_the_launcher() -> None:
    path = Path("streams/bad.py")
    for source in (
        "from journeys.devbroker import EmbeddedBroker\n",
        "from journeys import devbroker\n",
        "import journeys.devbroker\n",
    ):
        assert launcher_imports(imports_of(source, "streams.bad", path)), source
    assert launcher_imports(imports_of("from streams.admin import TopicSpec\n", "x", path)) == []


def test_streams_production_code_does_not_import_the_embedded_broker() -> None:
    found: list[str] = []
    for path in sources("streams"):
        if module_name(path) == LAUNCHER:
            continue
        source = path.read_text(encoding="utf-8")
        found += launcher_imports(
            imports_of(source, module_name(path), path, is_package=path.name == "__init__.py")
        )
    assert found == []


STATE_PREFIXES = ("i/", "m/", "p/", "s/", "t/", "j/", "f/", "fw/", "d/")
"""The state key prefixes; `streams.store.keys` alone spells them."""


def key_prefixes_spelled(source: str, path: Path) -> list[str]:
    """Bytes literals, and f-strings, that start with a state key prefix."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        text: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            text = node.value.decode("latin-1")
        elif (
            isinstance(node, ast.JoinedStr)
            and node.values
            and isinstance(first := node.values[0], ast.Constant)
            and isinstance(first.value, str)
        ):
            text = first.value
        if text is not None and text.startswith(STATE_PREFIXES):
            found.append(f"{path}:{node.lineno} spells {text[:8]!r}")
    return found


def test_the_checker_catches_a_spelled_key_prefix() -> None:
    for source in (
        'k = b"j/" + ref\n',
        'k = f"i/{tenant}/{key}".encode()\n',
        'k = b"fw/acme/c1"\n',
    ):
        assert key_prefixes_spelled(source, Path("streams/bad.py")), source
    assert key_prefixes_spelled('k = b"%04d/"\nurl = "/v1/journeys"\n', Path("x.py")) == []


def test_only_streams_keys_spells_a_state_key_prefix() -> None:
    found: list[str] = []
    for package in ("projections", "streams", "journeys"):
        for path in sources(package):
            if module_name(path) != "streams.store.keys":
                found += key_prefixes_spelled(path.read_text(encoding="utf-8"), path)
    assert found == []
    keys = ROOT / "streams" / "store" / "keys.py"
    assert len(key_prefixes_spelled(keys.read_text(encoding="utf-8"), keys)) == len(STATE_PREFIXES)
