"""core/ must stay usable from Airflow or a notebook: it may not import Dagster, even indirectly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import aiops_assets.core

CORE = Path(aiops_assets.core.__file__).parent


def _core_modules() -> list[Path]:
    return sorted(path for path in CORE.rglob("*.py"))


def test_no_core_module_names_dagster_in_an_import() -> None:
    offenders = []
    for path in _core_modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.name}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0].startswith("dagster")
            ]
    assert offenders == []


def test_importing_all_of_core_loads_no_dagster_module() -> None:
    modules = [
        ".".join(path.relative_to(CORE.parent.parent).with_suffix("").parts)
        for path in _core_modules()
        if path.stem != "__init__"
    ]
    assert modules, "core has modules"
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]", output.stdout
