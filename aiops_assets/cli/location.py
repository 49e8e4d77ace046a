"""Which code location an ``aiops`` command works on, named the way Dagster's CLI names one.

A platform team runs ``aiops`` against its own project, so the commands find the definitions as
``dagster dev`` and ``dagster asset materialize`` do: ``-m MODULE``, ``-f FILE``,
``-w workspace.yaml`` (with ``-a``, ``-d`` and ``-l`` meaning what they mean there), or, with none
of them, the ``[tool.dagster]``/``[tool.dg]`` block of ``pyproject.toml`` in the current folder,
then a ``workspace.yaml`` beside it. Only when nothing names a location and ``aiops`` runs from
this repository's own checkout does it fall back to the reference pipeline, so a host project
never works on the reference by accident.

The code is loaded in this process (``aiops`` needs the definitions, not a gRPC server); a
location that is the reference module is built from the command's settings rather than imported,
so ``--home`` reaches its resources. This module is imported only by the commands that load
definitions, never by ``aiops --help``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import dagster as dg

REFERENCE_MODULE = "aiops_assets.reference.definitions"
REFERENCE_NAME = "aiops_assets"
HOW_TO_NAME = (
    "give one with -m MODULE, -f FILE or -w WORKSPACE_YAML, or run aiops in a project whose "
    "pyproject.toml has a [tool.dagster] or [tool.dg] block"
)

Kind = Literal["module", "file", "package", "autoload"]
_FLAGS: dict[str, str] = {
    "module": "-m",
    "file": "-f",
    "package": "--package-name",
    "autoload": "--autoload-defs-module-name",
}


class LocationError(ValueError):
    """The options name no loadable location; the message is the one line the user sees."""


@dataclass(frozen=True)
class LocationOptions:
    """What the command line said, spelled as Dagster's workspace options."""

    module_name: tuple[str, ...] = ()
    python_file: tuple[str, ...] = ()
    workspace: tuple[str, ...] = ()
    package_name: tuple[str, ...] = ()
    autoload_defs_module_name: str | None = None
    attribute: str | None = None
    working_directory: str | None = None
    location: str | None = None

    def targets_given(self) -> bool:
        return bool(
            self.module_name
            or self.python_file
            or self.workspace
            or self.package_name
            or self.autoload_defs_module_name
        )


@dataclass(frozen=True)
class Pointer:
    """One code location: what to import, from where, and under which name."""

    kind: Kind
    target: str
    attribute: str | None = None
    working_directory: str | None = None
    location_name: str | None = None
    source: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        if self.location_name:
            return self.location_name
        return Path(self.target).stem if self.kind == "file" else self.target

    @property
    def is_reference(self) -> bool:
        return (
            self.kind in ("module", "package")
            and self.target == REFERENCE_MODULE
            and self.attribute in (None, "defs")
        )

    def cli_args(self) -> list[str]:
        """The same location for another ``aiops`` or ``dagster`` process."""
        args = [_FLAGS[self.kind], self.target]
        if self.attribute:
            args += ["-a", self.attribute]
        if self.working_directory:
            args += ["-d", self.working_directory]
        return args

    def describe(self) -> str:
        return self.source or " ".join(self.cli_args())


REFERENCE = Pointer(
    "module", REFERENCE_MODULE, location_name=REFERENCE_NAME, source="the reference pipeline"
)


def resolve(options: LocationOptions, cwd: Path | None = None) -> Pointer:
    """The one location the options name (``-l`` picks among several); the reference only in
    this repository's checkout with nothing named."""
    folder = Path.cwd() if cwd is None else cwd
    pointers = _named(options, folder) if options.targets_given() else _discovered(folder)
    if pointers is None:
        if checkout_root() is not None:
            return REFERENCE
        raise LocationError(f"no code location named; {HOW_TO_NAME}")
    return _pick(pointers, options.location)


def checkout_root() -> Path | None:
    """This repository's root, when ``aiops_assets`` is imported from its own checkout (an
    editable install); None when it is installed as a package into someone else's project."""
    import aiops_assets

    root = Path(aiops_assets.__file__).resolve().parent.parent
    block = _tool_block(root / "pyproject.toml", "dagster")
    return root if block.get("module_name") == REFERENCE_MODULE else None


def load_definitions(pointer: Pointer) -> dg.Definitions:
    """The location's ``dg.Definitions``, imported in this process as Dagster finds them: the
    one ``Definitions`` (or ``@dg.definitions`` function) at module scope, or ``-a``'s."""
    import dagster as dg

    # A @dg.definitions function imports the project's modules when called, after Dagster's
    # own import put the working directory on the path and took it off again.
    with _importable(pointer.working_directory or os.getcwd()):
        try:
            targets = _loadable_targets(pointer)
        except Exception as error:  # an import or definition error in the host's code
            raise LocationError(f"cannot load {pointer.describe()}: {_cause(error)}") from error
        if len(targets) != 1:
            found = ", ".join(sorted(attribute for attribute, _ in targets))
            raise LocationError(
                f"{pointer.describe()} defines several definitions ({found}); pick one with -a NAME"
            )
        attribute, loaded = targets[0]
    if not isinstance(loaded, dg.Definitions):
        raise LocationError(
            f"{pointer.describe()}: {attribute} is a {type(loaded).__name__}, not a "
            "dg.Definitions (aiops works on Definitions)"
        )
    try:
        loaded.resolve_asset_graph()  # an invalid definition is the host's mistake, said here
    except Exception as error:
        raise LocationError(f"cannot load {pointer.describe()}: {_cause(error)}") from error
    return loaded


@contextlib.contextmanager
def _importable(folder: str) -> Iterator[None]:
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _loadable_targets(pointer: Pointer) -> list[tuple[str, Any]]:
    """Dagster's own discovery of the definitions in a module or file. There is no public API
    for it (``dg.load_definitions_from_module`` collects loose assets and misses a module's
    ``Definitions`` and its resources), so this is the one place private Dagster modules are
    imported: the function ``dagster dev`` and the gRPC server call for the same options, and
    the type of what ``@dg.definitions`` returns."""
    from dagster._grpc.utils import get_loadable_targets
    from dagster.components.definitions import LazyDefinitions

    working_directory = pointer.working_directory or os.getcwd()
    targets = get_loadable_targets(
        python_file=pointer.target if pointer.kind == "file" else None,
        module_name=pointer.target if pointer.kind == "module" else None,
        package_name=pointer.target if pointer.kind == "package" else None,
        autoload_defs_module_name=pointer.target if pointer.kind == "autoload" else None,
        working_directory=working_directory,
        attribute=pointer.attribute,
        resolve_lazy_defs=False,
    )
    # A @dg.definitions function is called here, once (Dagster's resolve_lazy_defs would call
    # it and throw the result away).
    return [
        (
            target.attribute,
            target.target_definition()
            if isinstance(target.target_definition, LazyDefinitions)
            else target.target_definition,
        )
        for target in targets
    ]


def _cause(error: BaseException) -> str:
    """The innermost error, on one line: Dagster's wrappers repeat the CLI's own advice."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- what the command line named -----------------------------------------------------------


def _named(options: LocationOptions, cwd: Path) -> list[Pointer]:
    kinds = [
        bool(options.workspace),
        bool(options.python_file),
        bool(options.module_name),
        bool(options.package_name),
        bool(options.autoload_defs_module_name),
    ]
    if sum(kinds) > 1:
        raise LocationError("name the code location one way: -m, -f, -w or --package-name")
    if options.workspace:
        if options.attribute or options.working_directory:
            raise LocationError("-a and -d go in the workspace file, not beside -w")
        return [pointer for path in options.workspace for pointer in _workspace(Path(path), cwd)]
    several = len(options.module_name) + len(options.python_file) + len(options.package_name) > 1
    if several and options.attribute:
        raise LocationError("-a names one attribute: give one -m or -f with it")
    directory = options.working_directory or str(cwd)
    entries: list[tuple[Kind, str]] = [
        *(("module", name) for name in options.module_name),
        *(("file", str((cwd / name).resolve())) for name in options.python_file),
        *(("package", name) for name in options.package_name),
    ]
    if options.autoload_defs_module_name:
        entries.append(("autoload", options.autoload_defs_module_name))
    return [
        Pointer(kind, target, options.attribute, directory, source=f"{_FLAGS[kind]} {target}")
        for kind, target in entries
    ]


def _pick(pointers: Sequence[Pointer], name: str | None) -> Pointer:
    names = sorted(pointer.name for pointer in pointers)
    if name is not None:
        chosen = [pointer for pointer in pointers if pointer.name == name]
        if not chosen:
            raise LocationError(f"no code location {name!r}; the locations are {', '.join(names)}")
        return chosen[0]
    if len(pointers) != 1:
        raise LocationError(f"several code locations ({', '.join(names)}); pick one with -l NAME")
    return pointers[0]


# --- what the current project says -----------------------------------------------------------


def _discovered(cwd: Path) -> list[Pointer] | None:
    """Dagster's order with no option: ``pyproject.toml``'s block, then ``workspace.yaml``."""
    pyproject = cwd / "pyproject.toml"
    pointers = _from_pyproject(pyproject, cwd)
    if pointers:
        return pointers
    for name in ("workspace.yaml", "workspace.yml"):
        if (cwd / name).is_file():
            return _workspace(cwd / name, cwd)
    return None


def _from_pyproject(path: Path, cwd: Path) -> list[Pointer]:
    source = f"{path.name} [tool.dagster]"
    dagster_block = _tool_block(path, "dagster")
    name = dagster_block.get("code_location_name")
    if "module_name" in dagster_block:
        return [Pointer("module", str(dagster_block["module_name"]), None, str(cwd), name, source)]
    if "modules" in dagster_block:
        return [
            Pointer("module", str(module["name"]), None, str(cwd), name, source)
            for module in dagster_block["modules"]
            if isinstance(module, Mapping) and module.get("type", "module") == "module"
        ]
    project = _tool_block(path, "dg").get("project", {})
    if not isinstance(project, Mapping) or "root_module" not in project:
        return []
    # As `dagster dev` reads a project scaffolded by `dg` (dagster's load_target.py).
    source, root = f"{path.name} [tool.dg.project]", project["root_module"]
    name = project.get("code_location_name")
    if project.get("autoload_defs"):
        module = project.get("defs_module", f"{root}.defs")
        return [Pointer("autoload", str(module), None, str(cwd), name, source)]
    module = project.get("code_location_target_module", f"{root}.definitions")
    return [Pointer("module", str(module), None, str(cwd), name, source)]


def _tool_block(path: Path, tool: str) -> Mapping[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LocationError(f"cannot read {path}: {error}") from error
    block = data.get("tool", {}).get(tool, {})
    return block if isinstance(block, Mapping) else {}


def _workspace(path: Path, cwd: Path) -> list[Pointer]:
    """``load_from`` entries of a workspace file; paths are relative to the file, and a module
    without a working directory is imported from the file's folder."""
    import yaml

    file = path if path.is_absolute() else (cwd / path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise LocationError(f"cannot read workspace {path}: {_cause(error)}") from error
    entries = data.get("load_from") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise LocationError(f"workspace {path} has no load_from entries")
    return [_workspace_entry(entry, file.parent.resolve(), str(path)) for entry in entries]


_WORKSPACE_KEYS: dict[str, tuple[Kind, str]] = {
    "python_module": ("module", "module_name"),
    "python_file": ("file", "relative_path"),
    "python_package": ("package", "package_name"),
    "autoload_defs_module": ("autoload", "module_name"),
}


def _workspace_entry(entry: Any, folder: Path, path: str) -> Pointer:
    key = next(iter(entry), "") if isinstance(entry, Mapping) and len(entry) == 1 else ""
    if key not in _WORKSPACE_KEYS:
        raise LocationError(
            f"workspace {path}: aiops loads code in this process, so each load_from entry is one "
            f"of {', '.join(_WORKSPACE_KEYS)} (got {key or entry!r})"
        )
    kind, target_key = _WORKSPACE_KEYS[key]
    config = entry[key] if isinstance(entry[key], Mapping) else {target_key: entry[key]}
    if not config.get(target_key):
        raise LocationError(f"workspace {path}: {key} needs {target_key}")
    target = str(config[target_key])
    if kind == "file":
        target = str((folder / target).resolve())
    directory = config.get("working_directory")
    working_directory = str((folder / directory).resolve()) if directory else str(folder)
    return Pointer(
        kind,
        target,
        config.get("attribute"),
        working_directory,
        config.get("location_name"),
        f"workspace {path} ({key} {config[target_key]})",
    )
