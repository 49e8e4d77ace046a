"""The package's layers, read from its source: every import points down, and none closes a cycle.

core (aiops_assets/core: the engine, no orchestrator) < plugin (every other module of the package)
< reference (aiops_assets/reference: one code location built on the plugin) < cli (aiops_assets/cli,
and the older ``cli.py`` / ``*_cli.py`` modules). airflow (aiops_assets/airflow) sits beside
reference: both build on core and plugin and neither may import the other.

Every import counts: at module level, inside functions (a lazy import still makes the arrow),
under ``if TYPE_CHECKING:`` (a type is a dependency too) and ``importlib.import_module("...")``
with a literal name. Nothing is excluded; a failure names the module, the line and what it
imports. Implicit imports of parent packages are not arrows.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiops_assets

PACKAGE = Path(aiops_assets.__file__).resolve().parent
ROOT = PACKAGE.name
CORE = f"{ROOT}.core"

# The order of the layers; two layers of the same rank (reference, airflow) may not import each
# other.
RANK = {"core": 0, "plugin": 1, "reference": 2, "airflow": 2, "cli": 3}

MAX_MODULE_LINES = 900
MAX_FUNCTION_LINES = 120
# Alembic migrations are a record of the schema as it was, written once and never refactored.
SIZE_EXEMPT = (f"{CORE}.ledger_migrations",)


@dataclass(frozen=True)
class Import:
    importer: str
    line: int
    imported: str


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:2] == ["core"]:
        return "core"
    if parts[1:2] in (["reference"], ["airflow"]):
        return parts[1]
    if parts[1:2] == ["cli"] or (len(parts) == 2 and parts[1].endswith("_cli")):
        return "cli"
    return "plugin"


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The module ``from ... import`` names, with relative imports resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic_import(node: ast.AST) -> str | None:
    """The literal name given to ``importlib.import_module``, the lazy re-exports' import."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    argument = node.args[0]
    if name == "import_module" and isinstance(argument, ast.Constant):
        return str(argument.value)
    return None


def _targets(module: str, path: Path, node: ast.AST, known: frozenset[str]) -> Iterator[str]:
    """The modules an import statement (or an ``import_module`` call) makes ``module`` use."""
    if (dynamic := _dynamic_import(node)) is not None:
        yield dynamic
    elif isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        source = _absolute(module, path, node)
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            # `from aiops_assets.core import ledger` depends on that module, not on core/__init__.
            yield submodule if submodule in known else source


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@functools.cache
def all_imports() -> tuple[Import, ...]:
    """Every import made by a package module, of a package module or a third-party one."""
    modules = package_modules()
    known = frozenset(modules)
    found: set[Import] = set()
    for module, path in modules.items():
        for node in ast.walk(parsed(path)):
            found.update(
                Import(module, getattr(node, "lineno", 0), target)
                for target in _targets(module, path, node, known)
            )
    return tuple(sorted(found, key=lambda item: (item.importer, item.line, item.imported)))


def internal_imports() -> list[Import]:
    known = set(package_modules())
    return [item for item in all_imports() if item.imported in known]


def _allowed(importer: str, imported: str) -> bool:
    lower, upper = layer(imported), layer(importer)
    return lower == upper or RANK[lower] < RANK[upper]


def _where(item: Import) -> str:
    return f"{item.importer}:{item.line} ({layer(item.importer)}) imports {item.imported}"


def test_every_module_has_a_layer_and_the_layers_are_the_documented_ones() -> None:
    layers = {module: layer(module) for module in package_modules()}
    assert set(layers.values()) <= set(RANK)
    assert layers[ROOT] == "plugin" and layers[CORE] == "core"
    assert layers[f"{ROOT}.reference.definitions"] == "reference"
    assert layers[f"{ROOT}.runner"] == "plugin"


def test_every_import_points_down_the_layers() -> None:
    upward = [
        f"{_where(item)} ({layer(item.imported)})"
        for item in internal_imports()
        if not _allowed(item.importer, item.imported)
    ]
    assert not upward, "imports against core < plugin < reference|airflow < cli:\n" + "\n".join(
        upward
    )


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the package is deep enough to matter for recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))
    return components


def _describe_cycle(component: list[str], imports: Sequence[Import]) -> str:
    members = set(component)
    arrows = sorted(
        f"  {item.importer}:{item.line} -> {item.imported}"
        for item in imports
        if item.importer in members and item.imported in members
    )
    return " <-> ".join(component) + "\n" + "\n".join(arrows)


def test_no_import_cycle_among_the_package_modules() -> None:
    imports = internal_imports()
    graph: dict[str, set[str]] = {module: set() for module in package_modules()}
    for item in imports:
        graph[item.importer].add(item.imported)
    cycles = [_describe_cycle(component, imports) for component in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_names_a_cycle_and_only_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert strongly_connected(graph) == [["a", "b", "c"], ["e"]]


def test_the_layer_rule_allows_down_and_sideways_within_a_layer_only() -> None:
    assert _allowed(f"{ROOT}.reference.demo", f"{ROOT}.runner")
    assert _allowed(f"{ROOT}.cli.demo", f"{ROOT}.reference.demo")
    assert not _allowed(f"{ROOT}.core.ledger", f"{ROOT}.resources")
    assert not _allowed(f"{ROOT}.checks.drift", f"{ROOT}.reference.assets.features")
    assert not _allowed(f"{ROOT}.airflow.operators", f"{ROOT}.reference.settings")
    assert not _allowed(f"{ROOT}.runner", f"{ROOT}.registry_cli")


def test_no_core_module_imports_dagster() -> None:
    """core/ must stay usable from Airflow or a notebook: not even a lazy Dagster import."""
    offenders = [
        _where(item)
        for item in all_imports()
        if layer(item.importer) == "core" and item.imported.split(".")[0].startswith("dagster")
    ]
    assert not offenders, "\n".join(offenders)


def test_importing_all_of_core_loads_no_dagster_module() -> None:
    """Indirectly neither: a third-party package core imports could bring Dagster in."""
    modules = sorted(module for module in package_modules() if layer(module) == "core")
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]", output.stdout


# -- size -------------------------------------------------------------------------------------------


def _exempt(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in SIZE_EXEMPT)


def test_no_module_is_over_the_line_limit() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {lines} lines"
        for module, path in package_modules().items()
        if not _exempt(module)
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_is_over_the_line_limit() -> None:
    offenders = []
    for module, path in package_modules().items():
        if _exempt(module):
            continue
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    offenders.append(
                        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: "
                        f"{lines} lines"
                    )
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)
