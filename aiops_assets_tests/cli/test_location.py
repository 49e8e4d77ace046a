"""`aiops` on a host's own code location: `-m`, `-f`, `-w` and the project's pyproject.toml, as
Dagster's CLI reads them, and the one-line refusals when no location (or a wrong one) is named.

The host project is written into the test's folder: ``edge_ops``, a daily-partitioned asset of
its own (``edge_metrics``) monitored by the ``AiopsMonitoring`` component from ``defs.yaml``, and
a ``definitions.py`` that loads the defs folder, as ``dg scaffold project`` lays one out. It
imports nothing of the reference pipeline. `aiops backfill` is the command driven: it loads the
location, checks the days against the location's own partitions and runs them with their checks.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops_assets.cli import location
from aiops_assets.cli._common import ledger_of, load_settings
from aiops_assets_tests.cli.conftest import Aiops

PACKAGE = "edge_ops"
MODULE = f"{PACKAGE}.definitions"
IN_RANGE = ("--from", "2025-03-01", "--to", "2025-03-02")
OUT_OF_RANGE = ("--from", "2020-03-01", "--to", "2020-03-01")
PARTITIONS = "the daily partitions 2025-03-01..2025-03-04"

DG_PYPROJECT = """\
    [project]
    name = "edge-ops"
    version = "0.1.0"

    [tool.dg]
    directory_type = "project"

    [tool.dg.project]
    root_module = "edge_ops"
    """

PROJECT_FILES: dict[str, str] = {
    "pyproject.toml": DG_PYPROJECT,
    "edge_ops/__init__.py": "",
    "edge_ops/metrics.py": """\
        import dagster as dg
        import numpy as np
        import pandas as pd

        DAYS = dg.DailyPartitionsDefinition(start_date="2025-03-01", end_date="2025-03-05")


        @dg.asset(partitions_def=DAYS)
        def edge_metrics(context: dg.AssetExecutionContext) -> pd.DataFrame:
            day = pd.Timestamp(context.partition_key)
            rng = np.random.default_rng(int(day.strftime("%Y%m%d")))
            return pd.DataFrame(
                {"host": rng.choice(["a", "b"], 96), "latency_ms": rng.normal(100.0, 5.0, 96)}
            )
        """,
    "edge_ops/definitions.py": """\
        from pathlib import Path

        import dagster as dg


        @dg.definitions
        def defs() -> dg.Definitions:
            return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
        """,
    "edge_ops/defs/__init__.py": "",
    "edge_ops/defs/assets.py": """\
        from edge_ops.metrics import edge_metrics

        __all__ = ["edge_metrics"]
        """,
    "edge_ops/defs/monitoring/defs.yaml": """\
        type: aiops_assets.AiopsMonitoring
        attributes:
          assets_from: [assets.py]
          monitors:
            - asset: edge_metrics
              quality_suite: suites/edge_metrics.yaml
        """,
    "edge_ops/defs/monitoring/suites/edge_metrics.yaml": """\
        name: edge_metrics
        version: 1
        expectations:
          - {type: expect_table_row_count_to_be_between, kwargs: {min_value: 1}}
          - {type: expect_column_values_to_not_be_null, kwargs: {column: latency_ms}}
        """,
    "workspace.yaml": """\
        load_from:
          - python_module: {module_name: edge_ops.definitions, location_name: edge}
          - python_file: {relative_path: edge_ops/definitions.py, location_name: edge_file}
        """,
}


@pytest.fixture
def project(clean_env: Path) -> Iterator[Path]:
    """The host project beside the test's working folder; its modules forgotten afterwards."""
    root = clean_env / "edge-ops"
    for relative, text in PROJECT_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    yield root
    for name in [name for name in sys.modules if name.split(".")[0] in (PACKAGE, "definitions")]:
        del sys.modules[name]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _days(home: Path) -> tuple[list[str], list[bool]]:
    """The materialized edge_metrics partitions and its quality check's verdicts, from the
    instance the UI reads."""
    key = dg.AssetCheckKey(dg.AssetKey("edge_metrics"), "edge_metrics_error")
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        records = instance.fetch_materializations(dg.AssetKey("edge_metrics"), limit=10).records
        checks = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        partitions = sorted(str(record.partition_key) for record in records)
        verdicts = [record.evaluation.passed for record in checks if record.evaluation is not None]
    return partitions, verdicts


def test_a_module_named_with_m_is_backfilled_with_its_own_assets_and_checks(
    aiops: Aiops, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = project.parent / "home"
    code, out, err = aiops(
        "backfill", *IN_RANGE, "--json", "--home", str(home), "-m", MODULE, "-d", str(project)
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["assets"] == ["edge_metrics"]
    assert [(day["partition"], day["status"]) for day in result["days"]] == [
        ("2025-03-01", "done"),
        ("2025-03-02", "done"),
    ]
    assert _days(home) == (["2025-03-01", "2025-03-02"], [True, True])
    # `aiops incident` reads the same location's history, but its diagnosis follows a scored
    # model (its scores asset and performance check), which this location (monitoring only)
    # does not have: one line, exit 2.
    monkeypatch.setenv("AIOPS_AUDIT_KEY", "a-test-key-that-is-long-enough-for-hmac")
    with ledger_of(load_settings(home)):
        pass
    code, _, err = aiops("incident", "--home", str(home), "-m", MODULE, "-d", str(project))
    assert code == 2
    assert _one_line(err) == (
        f"aiops incident: code location {MODULE} (-m {MODULE}) has no scored model with a "
        "performance check (build_model_lifecycle with serve=, or an anomaly_scores asset), "
        "which `aiops incident` diagnoses"
    )


def test_the_current_projects_tool_dg_block_names_the_location(
    aiops: Aiops, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    home = project.parent / "home"
    code, out, err = aiops("backfill", "--from", "2025-03-03", "--to", "2025-03-03", "--json",
                           "--home", str(home))  # fmt: skip
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["assets"] == ["edge_metrics"]
    assert _days(home) == (["2025-03-03"], [True])


def test_a_tool_dagster_block_names_the_location_and_its_name(
    aiops: Aiops, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # [tool.dagster] comes first, as in Dagster; [tool.dg] stays for load_from_defs_folder.
    (project / "pyproject.toml").write_text(
        textwrap.dedent(DG_PYPROJECT)
        + '\n[tool.dagster]\nmodule_name = "edge_ops.definitions"\ncode_location_name = "edge"\n'
    )
    monkeypatch.chdir(project)
    code, _, err = aiops("backfill", *OUT_OF_RANGE)
    assert code == 2
    assert _one_line(err) == (
        f"aiops backfill: 2020-03-01..2020-03-01 is outside {PARTITIONS} of code location edge"
    )


def test_a_python_file_named_with_f_is_loaded(aiops: Aiops, project: Path) -> None:
    code, _, err = aiops(
        "backfill", *OUT_OF_RANGE, "-f", str(project / "edge_ops" / "definitions.py"),
        "-d", str(project),
    )  # fmt: skip
    assert code == 2
    assert _one_line(err).endswith(f"is outside {PARTITIONS} of code location definitions")


def test_a_workspace_file_names_its_locations_and_l_picks_one(aiops: Aiops, project: Path) -> None:
    workspace = str(project / "workspace.yaml")
    code, _, err = aiops("backfill", *OUT_OF_RANGE, "-w", workspace)
    assert code == 2
    assert _one_line(err) == (
        "aiops backfill: several code locations (edge, edge_file); pick one with -l NAME"
    )
    for name in ("edge", "edge_file"):
        code, _, err = aiops("backfill", *OUT_OF_RANGE, "-w", workspace, "-l", name)
        assert code == 2
        assert _one_line(err).endswith(f"is outside {PARTITIONS} of code location {name}")
    code, _, err = aiops("backfill", *OUT_OF_RANGE, "-w", workspace, "-l", "nope")
    assert _one_line(err) == (
        "aiops backfill: no code location 'nope'; the locations are edge, edge_file"
    )


def test_without_a_location_outside_this_repository_the_command_says_how_to_name_one(
    aiops: Aiops, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(location, "checkout_root", lambda: None)
    code, _, err = aiops("backfill", *IN_RANGE)
    assert code == 2
    assert _one_line(err) == (
        "aiops backfill: no code location named; give one with -m MODULE, -f FILE or "
        "-w WORKSPACE_YAML, or run aiops in a project whose pyproject.toml has a "
        "[tool.dagster] or [tool.dg] block"
    )


def test_inside_this_repository_the_reference_pipeline_is_the_default(aiops: Aiops) -> None:
    assert location.checkout_root() is not None
    code, _, err = aiops("backfill", *OUT_OF_RANGE)
    assert code == 2
    # The reference's own range check: its partitions come from AIOPS_START / AIOPS_DAYS.
    assert "set AIOPS_START / AIOPS_DAYS" in _one_line(err)


def test_a_location_that_does_not_load_or_is_named_twice_is_one_line(
    aiops: Aiops, project: Path
) -> None:
    code, _, err = aiops("backfill", *IN_RANGE, "-m", "no_such_module_h6")
    assert code == 2
    assert _one_line(err) == (
        "aiops backfill: cannot load -m no_such_module_h6: ModuleNotFoundError: "
        "No module named 'no_such_module_h6'"
    )
    code, _, err = aiops("backfill", *IN_RANGE, "-m", MODULE, "-f", "edge_ops/definitions.py")
    assert code == 2
    assert _one_line(err) == (
        "aiops backfill: name the code location one way: -m, -f, -w or --package-name"
    )


def test_a_champion_move_on_a_location_without_a_champion_is_refused_before_anything_runs(
    aiops: Aiops, project: Path
) -> None:
    home = project.parent / "home"
    code, _, err = aiops(
        "registry", "promote", "1", "--reason", "r", "--home", str(home),
        "-m", MODULE, "-d", str(project),
    )  # fmt: skip
    assert code == 2
    assert _one_line(err) == (
        f"aiops registry promote: code location {MODULE} (-m {MODULE}) has no champion_model "
        "asset, which `aiops registry promote` moves the champion with"
    )
    assert not home.exists()  # no ledger, key or instance was made


_IDENTIFIER = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8).filter(
    lambda text: not text.startswith("_")
)


@given(
    parts=st.lists(_IDENTIFIER, min_size=1, max_size=3),
    attribute=st.none() | _IDENTIFIER,
    directory=st.sampled_from(["/srv/project", "/tmp/x y"]),
)
def test_a_pointer_given_back_as_options_names_the_same_location(
    parts: list[str], attribute: str | None, directory: str
) -> None:
    """The resume line of a backfill hands the location to the next process: what it prints
    must resolve to the same location."""
    module = ".".join(parts)
    options = location.LocationOptions(
        module_name=(module,), attribute=attribute, working_directory=directory
    )
    pointer = location.resolve(options, Path("/nowhere"))
    args = pointer.cli_args()
    given_back = location.LocationOptions(
        module_name=(args[1],),
        attribute=args[args.index("-a") + 1] if "-a" in args else None,
        working_directory=args[args.index("-d") + 1],
    )
    assert location.resolve(given_back, Path("/elsewhere")) == pointer
    assert pointer.name == module


@pytest.mark.subprocess
def test_a_commands_help_loads_no_location_and_no_dagster() -> None:
    """The options cost nothing until a handler asks for the definitions."""
    probe = (
        "import sys\n"
        "from aiops_assets.cli import main\n"
        "code = main(['backfill', '--help'])\n"
        "loaded = [n for n in ('dagster', 'aiops_assets.cli.location') if n in sys.modules]\n"
        "assert code == 0 and not loaded, loaded\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "-m, --module-name MODULE" in completed.stdout
