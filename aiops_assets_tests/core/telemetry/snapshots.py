"""Shared by the source tests: the reference scenario's days, and their snapshot per source.

A source is judged by what the pipeline stores from it: ``telemetry_snapshot`` of the reference
code location is materialized in-process for each day (ingest alone, as the other source tests
do: the baseline checks need a trained home) and the day's content hash is read back.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from aiops_assets.core import telemetry
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.definitions import BASELINE_CHECKS, build_definitions
from aiops_assets.reference.settings import DEFAULT_SEED, DEFAULT_START, PipelineSettings
from aiops_assets.runner import materialize_selection

SNAPSHOT = "telemetry_snapshot"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Two ordinary days, then the scenario's null-injection day (NaN cells travel too).
FIRST_DAY = date(2026, 1, 9)
DAYS = 3
SNAPSHOT_DAYS = 2  # the null day is quarantined by the quality gate, so it has no snapshot


def scenario_days(first: date = FIRST_DAY, days: int = DAYS) -> pd.DataFrame:
    """The reference scenario's telemetry for ``days`` days from ``first``, canonical."""
    scenario = telemetry.default_scenario(start=DEFAULT_START, days=14, seed=DEFAULT_SEED)
    return telemetry.generate(scenario, first, first + timedelta(days=days))


def write_directory(frame: pd.DataFrame, folder: Path) -> Path:
    """``frame`` as one CSV per service, the layout of the directory source."""
    folder.mkdir(parents=True, exist_ok=True)
    for service, rows in frame.groupby(telemetry.SERVICE, sort=True):
        rows.to_csv(folder / f"{service}.csv", index=False)
    return folder


def snapshot_hashes(settings: PipelineSettings) -> dict[str, str]:
    """``telemetry_snapshot``'s content hash per day, materialized from ``settings``' source."""
    definitions = build_definitions(settings)
    selection = dg.AssetSelection.assets(SNAPSHOT) - dg.AssetSelection.checks(*BASELINE_CHECKS)
    hashes = {}
    with dg.DagsterInstance.ephemeral() as instance:
        for offset in range(settings.days):
            day = (settings.start + timedelta(days=offset)).isoformat()
            run = materialize_selection(
                definitions, instance, selection, partition_key=day, run_config=QUIET
            )
            assert run.success, f"telemetry_snapshot[{day}] failed"
            ref = ArtifactStore(settings.store_root).get_ref(f"assets/{SNAPSHOT}/{day}")
            assert ref is not None, f"telemetry_snapshot[{day}] stored no snapshot"
            hashes[day] = ref.sha256
    return hashes


def directory_settings(root: Path, frame: pd.DataFrame) -> PipelineSettings:
    return PipelineSettings(
        start=FIRST_DAY,
        days=SNAPSHOT_DAYS,
        home=root / "directory-home",
        source_kind="directory",
        source_path=str(write_directory(frame, root / "directory-source")),
    )


def assert_same_snapshots_as_files(
    kind: str, url: str, mapping_file: Path, generated: pd.DataFrame, tmp_path: Path
) -> None:
    """The days read through source ``kind`` snapshot to the same hashes as from CSV files."""
    from_files = snapshot_hashes(directory_settings(tmp_path, generated))
    from_source = snapshot_hashes(
        PipelineSettings(
            start=FIRST_DAY,
            days=SNAPSHOT_DAYS,
            home=tmp_path / f"{kind}-home",
            source_kind=kind,  # type: ignore[arg-type]
            source_url=url,
            source_mapping=str(mapping_file),
        )
    )
    assert len(set(from_files.values())) == SNAPSHOT_DAYS
    assert from_source == from_files
