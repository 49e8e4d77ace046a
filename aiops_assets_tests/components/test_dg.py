"""`dg` finds the plugin's component and scaffolds it into a new project as a starter that loads.

`dg` runs as a user runs it, in fresh processes, offline: the new project is laid out as
`create-dagster project` lays one out (flat, a `definitions.py` loading the defs folder), and its
`.venv` is this test's environment (where `aiops_assets` is installed), so `dg` needs no `uv sync`
and no network. Telemetry is off and nothing is written outside the test's folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

pytestmark = pytest.mark.subprocess

DG = Path(sys.executable).with_name("dg")
COMPONENT = "aiops_assets.AiopsMonitoring"
PACKAGE = "starter_ops"

PROJECT_FILES: dict[str, str] = {
    "pyproject.toml": f"""\
        [project]
        name = "starter-ops"
        version = "0.1.0"
        requires-python = ">=3.11"
        dependencies = ["aiops-assets"]

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "{PACKAGE}"
        """,
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/definitions.py": """\
        from pathlib import Path

        import dagster as dg


        @dg.definitions
        def defs() -> dg.Definitions:
            return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
        """,
    f"{PACKAGE}/defs/__init__.py": "",
    f"{PACKAGE}/defs/assets.py": """\
        import dagster as dg
        import pandas as pd


        @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2025-03-01"))
        def latency(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return pd.DataFrame({"host": ["a", "b"], "p99_ms": [100.0, 120.0]})
        """,
}


def _environment(folder: Path, project: Path | None = None) -> dict[str, str]:
    dagster_home = folder / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "AIOPS_", "VIRTUAL_ENV"))
    }
    environment.update(
        DAGSTER_HOME=str(dagster_home), HOME=str(folder), XDG_CACHE_HOME=str(folder / ".cache")
    )
    if project is not None:  # the project's .venv is the active one, as after `source .venv/...`
        environment["VIRTUAL_ENV"] = str(project / ".venv")
    return environment


def _dg(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [str(DG), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "starter-ops"
    for relative, text in PROJECT_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    yield root
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_dg_lists_the_plugins_component(tmp_path: Path) -> None:
    listed = _dg(
        "list", "components", "--json", "--package", "aiops_assets",
        cwd=tmp_path, env=_environment(tmp_path),
    )  # fmt: skip
    items = {item["key"]: item["summary"] for item in json.loads(listed.stdout)["items"]}
    assert list(items) == [COMPONENT]
    assert items[COMPONENT].startswith("Quality and drift checks")


def test_dg_scaffolds_a_starter_defs_yaml_that_loads(project: Path, tmp_path: Path) -> None:
    environment = _environment(tmp_path, project)
    _dg("scaffold", "defs", COMPONENT, "monitoring", "--asset", "latency",
        cwd=project, env=environment)  # fmt: skip
    folder = project / PACKAGE / "defs" / "monitoring"
    text = (folder / "defs.yaml").read_text()
    assert text.startswith("# ")  # the starter explains itself
    starter = yaml.safe_load(text)
    assert starter["type"] == COMPONENT
    assert starter["attributes"]["assets_from"] == ["assets.py"]
    [monitor] = starter["attributes"]["monitors"]
    assert monitor["asset"] == "latency"
    assert yaml.safe_load((folder / monitor["quality_suite"]).read_text())["name"] == "latency"

    checked = _dg("check", "defs", cwd=project, env=environment)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    sys.path.insert(0, str(project))
    try:
        graph = dg.load_from_defs_folder(path_within_project=project).resolve_asset_graph()
    finally:
        sys.path.remove(str(project))
    latency = dg.AssetKey("latency")
    assert dg.AssetKey("latency_drift_baseline") in graph.materializable_asset_keys
    assert {dg.AssetCheckKey(latency, "drift"), dg.AssetCheckKey(latency, "latency_error")} <= set(
        graph.asset_check_keys
    )
