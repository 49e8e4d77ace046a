"""In-process materialization: how the CLI, the demo, the tests and the benchmarks run assets.

In process because a subprocess per step spends most of its time importing (about 10 s a step on
two cores); the runs land in the same instance the UI serves, so they show up there like any other.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from aiops_assets.keys import ON_DEMAND_CHECK_NAMES, SNAPSHOT_KEY

DATA_VERSION_TAG = "dagster/data_version"

# Used only when the working directory has no dagster.yaml of its own (the package run elsewhere).
MINIMAL_INSTANCE_YAML = "telemetry:\n  enabled: false\n"

# The callers print their own progress; Dagster's console log would bury it.
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def quiet(run_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``run_config`` with Dagster's console log silenced (a caller's own loggers win)."""
    return {**QUIET_RUN_CONFIG, **(run_config or {})}


def prepare_instance(dagster_home: Path, template: Path | None = None) -> dg.DagsterInstance:
    """Open (creating when missing) the project-local instance, seeded from the project's dagster.yaml."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    source = template if template is not None else Path("dagster.yaml")
    if source.is_file():
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
    elif not target.exists():
        target.write_text(MINIMAL_INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(dagster_home))


def on_demand_checks(definitions: dg.Definitions) -> list[dg.AssetCheckKey]:
    """The checks no job runs (they cost a training each): launched by a person only."""
    graph = definitions.resolve_asset_graph()
    return [key for key in graph.asset_check_keys if key.name in ON_DEMAND_CHECK_NAMES]


def materialize_selection(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: Sequence[str] | dg.AssetSelection,
    *,
    partition_key: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One in-process run of some of the definitions' assets, with the definitions' resources."""
    assets = [
        definition
        for definition in [*(definitions.assets or []), *(definitions.asset_checks or [])]
        if isinstance(definition, dg.AssetsDefinition)
    ]
    chosen = (
        selection
        if isinstance(selection, dg.AssetSelection)
        else dg.AssetSelection.assets(*selection)
    )
    return dg.materialize(
        assets,
        instance=instance,
        resources=definitions.resources,
        partition_key=partition_key,
        # Checks of the selected assets run with them (a blocking one can stop what follows),
        # except the on-demand ones.
        selection=chosen - dg.AssetSelection.checks(*on_demand_checks(definitions)),
        run_config=run_config,
        tags=tags,
        raise_on_error=raise_on_error,
    )


def daily_partition_keys(
    definitions: dg.Definitions, asset_key: dg.AssetKey = SNAPSHOT_KEY
) -> list[str]:
    """Every partition key of ``asset_key`` (the ingest asset's, by default)."""
    partitions_def = definitions.resolve_asset_graph().get(asset_key).partitions_def
    if partitions_def is None:
        raise ValueError(f"{asset_key.to_user_string()} is not partitioned")
    return list(partitions_def.get_partition_keys())


def run_failure_message(run: dg.ExecuteInProcessResult) -> str:
    """The first failed step and its error, on one line, for a user's terminal."""
    for event in run.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            return f"step {event.step_key} failed: {error.message.strip()}"
    return f"run {run.run_id} failed"
