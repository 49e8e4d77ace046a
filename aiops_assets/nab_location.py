"""A NAB code location: the cross-validated candidate run as Dagster assets, one partition a file.

Why: ``core.nab_cv`` scores its candidates with plain calls, but a user runs the detector through
assets (stored, content-addressed, versioned, visible in the UI). Issue 22 asks that both paths
give the same scores, so this location runs what the evaluation chose through real assets and
:func:`evaluate_through_dagster` scores the stored alarms with the same NAB scorer:

- ``nab_series`` (partitioned by NAB file key) loads one file with the project's loader
  (``load_nab``, clock repeats dropped), keeps each row's position in the file (NAB scores every
  row of the file) and stores it as canonical Parquet, its SHA-256 being its data version.
- ``nab_alarms`` (same partitions) runs each profile's candidate as a ``core.detectors.Pager`` on
  the stored values, labels dropped before it, and stores the alarm rows (file positions) as
  JSON, content-addressed likewise. The candidates come in the run config, so the run page shows
  exactly what ran and its hash is recorded.
"""

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from aiops_assets.core.detectors import AlarmRule
from aiops_assets.core.nab import (
    file_timestamps,
    load_profiles,
    normalized_score,
    probationary_length,
    row_layout,
    score_alarm_rows,
)
from aiops_assets.core.nab_cv import Candidate, pager_for, rows_per_day
from aiops_assets.core.progress import NoProgress, Progress
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.core.telemetry import LABEL, TIMESTAMP, clock_repeats, load_nab, read_nab_windows
from aiops_assets.io import ArtifactRefIOManager, asset_ref_name
from aiops_assets.metadata import (
    artifact_metadata,
    config_hash,
    frame_metadata,
    latest_materialization_metadata,
    versioned_output,
)
from aiops_assets.resources import ArtifactStoreResource
from aiops_assets.runner import materialize_selection, quiet, run_failure_message

__all__ = [
    "NAB_ALARMS_KEY",
    "NAB_SERIES_KEY",
    "CandidateConfig",
    "NabAlarmsConfig",
    "NabDagsterError",
    "alarms_run_config",
    "candidate_from_winner",
    "evaluate_through_dagster",
    "file_alarms",
    "nab_definitions",
]

NAB_SERIES_KEY: Final = dg.AssetKey("nab_series")
NAB_ALARMS_KEY: Final = dg.AssetKey("nab_alarms")
# Each kept row's 0-based position in the file: alarms are reported where NAB scores them.
FILE_ROW: Final = "file_row"
# Every row of the file, clock repeats included (the probationary period is 15 % of these).
FILE_ROWS_KEY: Final = "nab/file_rows"


class NabDagsterError(RuntimeError):
    """A run of the NAB assets failed; the message is the failed step's error, on one line."""


class CandidateConfig(dg.Config):
    """One candidate of the ``core.nab_cv`` grid: a stream and its alarm rule, field by field."""

    stream: str
    family: str
    tail_probability: float
    cooldown_fraction: float
    spatial_tolerance: float | None
    average_rows: int
    history_rows: int

    def candidate(self) -> Candidate:
        rule = AlarmRule(
            tail_probability=self.tail_probability,
            cooldown_fraction=self.cooldown_fraction,
            spatial_tolerance=self.spatial_tolerance,
            average_rows=self.average_rows,
            history_rows=self.history_rows,
        )
        return Candidate(self.stream, self.family, rule)


class NabAlarmsConfig(dg.Config):
    """Per scoring profile, the candidate to run (NAB tunes one choice per profile)."""

    candidates: dict[str, CandidateConfig] = Field(default_factory=dict)


def candidate_from_winner(winner: Mapping[str, Any]) -> Candidate:
    """A candidate from one profile's entry of ``core.nab_cv.evaluate(...)["winner"]``."""
    return Candidate(str(winner["stream"]), str(winner["family"]), AlarmRule(**winner["rule"]))


def alarms_run_config(candidates: Mapping[str, Candidate]) -> dict[str, Any]:
    """The run config that makes ``nab_alarms`` run these candidates (profile -> candidate)."""
    chosen = {
        profile: {
            "stream": candidate.stream,
            "family": candidate.family,
            "tail_probability": candidate.rule.tail_probability,
            "cooldown_fraction": candidate.rule.cooldown_fraction,
            "spatial_tolerance": candidate.rule.spatial_tolerance,
            "average_rows": candidate.rule.average_rows,
            "history_rows": candidate.rule.history_rows,
        }
        for profile, candidate in candidates.items()
    }
    return {"ops": {NAB_ALARMS_KEY.path[-1]: {"config": {"candidates": chosen}}}}


def _series_asset(root: Path, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=NAB_SERIES_KEY,
        partitions_def=partitions,
        io_manager_key="artifact_io_manager",
        group_name="nab",
        kinds={"parquet"},
        description=(
            "One NAB file as loaded by core.telemetry.load_nab (clock repeats dropped), with each "
            "row's position in the file; canonical Parquet, its SHA-256 is its data version."
        ),
    )
    def nab_series(
        context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource
    ) -> dg.Output[ArtifactRef]:
        key = context.partition_key
        timestamps = file_timestamps(root, key)
        frame = load_nab(root, files=[key], drop_clock_repeats=True)
        frame[FILE_ROW] = np.flatnonzero(~clock_repeats(pd.Series(timestamps))).astype("int64")
        ref = artifact_store.get_store().put_frame(frame, sort_by=(TIMESTAMP,))
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **frame_metadata(frame),
                FILE_ROWS_KEY: dg.MetadataValue.int(len(timestamps)),
            },
        )

    return nab_series


def _alarms_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=NAB_ALARMS_KEY,
        partitions_def=partitions,
        io_manager_key="artifact_io_manager",
        group_name="nab",
        kinds={"json"},
        ins={"series": dg.AssetIn(NAB_SERIES_KEY)},
        description=(
            "Per scoring profile, the rows where the configured core.nab_cv candidate pages on "
            "the file (0-based file positions, none in the probationary 15 %); JSON, its SHA-256 "
            "is its data version."
        ),
    )
    def nab_alarms(
        context: dg.AssetExecutionContext,
        config: NabAlarmsConfig,
        artifact_store: ArtifactStoreResource,
        series: dict[str, pd.DataFrame],
    ) -> dg.Output[ArtifactRef]:
        if not config.candidates:
            raise dg.Failure(description="nab_alarms needs at least one candidate in its config")
        key = context.partition_key
        frame = series[key].drop(columns=[LABEL])  # the labels are the scorer's, never the pager's
        upstream = latest_materialization_metadata(context.instance, NAB_SERIES_KEY, key)
        alarms = {
            profile: file_alarms(frame, int(upstream[FILE_ROWS_KEY]), chosen.candidate())
            for profile, chosen in config.candidates.items()
        }
        document = {
            "file": key,
            "alarms": alarms,
            "candidates": {p: c.candidate().label() for p, c in config.candidates.items()},
        }
        ref = artifact_store.get_store().put_json(document)
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                "config_hash": dg.MetadataValue.text(config_hash(config)),
                **{f"alarms/{p}": dg.MetadataValue.int(len(rows)) for p, rows in alarms.items()},
            },
        )

    return nab_alarms


def file_alarms(frame: pd.DataFrame, file_rows: int, candidate: Candidate) -> list[int]:
    """The candidate's alarms on a stored series, as file positions (what NAB scores).

    The same learning rows as ``core.nab_cv``: the file's probationary rows counted in kept rows;
    a series too short to learn from stays silent, as it does there.
    """
    kept = frame[FILE_ROW].to_numpy(dtype="int64")
    values = frame["value"].to_numpy(dtype="float64")
    learn_rows = int(np.searchsorted(kept, probationary_length(file_rows), "left"))
    if len(values) < max(learn_rows, 2):
        return []
    period = rows_per_day(frame[TIMESTAMP])
    pager = pager_for(candidate, period=period, learn_rows=learn_rows)
    return [int(position) for position in kept[pager.alarms(values, learn_rows=learn_rows)]]


def nab_definitions(
    root: str | os.PathLike[str], files: Sequence[str], *, store_root: str | os.PathLike[str]
) -> dg.Definitions:
    """The NAB location over ``files`` of the folder ``root``, storing into ``store_root``."""
    partitions = dg.StaticPartitionsDefinition(list(files))
    store = str(store_root)
    return dg.Definitions(
        assets=[_series_asset(Path(root), partitions), _alarms_asset(partitions)],
        resources={
            "artifact_store": ArtifactStoreResource(root=store),
            "artifact_io_manager": ArtifactRefIOManager(root=store),
        },
    )


def evaluate_through_dagster(
    root: str | os.PathLike[str],
    files: Sequence[str],
    candidates: Mapping[str, Candidate],
    *,
    work_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Materialize both assets for every file, then score the stored alarms per profile.

    ``candidates`` maps each profile to the candidate run for it (the in-sample choice of
    ``core.nab_cv.evaluate``: its ``winner``). The instance is an ephemeral one and the store a
    throwaway folder (under ``work_dir`` when given). Returns ``{"ours": {profile: normalized
    score}, "files": {key: {...}}, "candidates": {...}, "seconds": ...}``, all JSON-able.
    """
    started = time.perf_counter()
    nab_root = Path(root)
    keys = list(files)
    progress = progress or NoProgress()
    with (
        tempfile.TemporaryDirectory(prefix="aiops-nab-dagster-", dir=work_dir) as scratch,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        store = ArtifactStore(Path(scratch) / "store")
        definitions = nab_definitions(nab_root, keys, store_root=str(store.root))
        run_config = quiet(alarms_run_config(candidates))
        progress.begin(len(keys), f"{len(keys)} NAB file(s) through the Dagster assets")
        documents: dict[str, dict[str, Any]] = {}
        for key in keys:
            progress.step(key)
            run = materialize_selection(
                definitions,
                instance,
                dg.AssetSelection.assets(NAB_SERIES_KEY, NAB_ALARMS_KEY),
                partition_key=key,
                run_config=run_config,
                raise_on_error=False,
            )
            if not run.success:
                raise NabDagsterError(f"{key}: {run_failure_message(run)}")
            ref = store.require_ref(asset_ref_name(NAB_ALARMS_KEY, key))
            series = store.require_ref(asset_ref_name(NAB_SERIES_KEY, key))
            documents[key] = {"alarms_sha256": ref.sha256, "series_sha256": series.sha256}
            documents[key]["alarms"] = store.get_json(ref)["alarms"]
        progress.end()
    result = _score(nab_root, keys, candidates, documents)
    result["seconds"] = time.perf_counter() - started
    return result


def _score(
    root: Path,
    keys: Sequence[str],
    candidates: Mapping[str, Candidate],
    documents: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """NAB's normalized score of the stored alarms, summed over the files as ``core.nab_cv`` does."""
    profiles = {name: p for name, p in load_profiles(root).items() if name in candidates}
    windows = read_nab_windows(root)
    raw = np.empty((len(keys), len(profiles)))
    null = np.empty((len(keys), len(profiles)))
    for row, key in enumerate(keys):
        timestamps = file_timestamps(root, key)
        for column, (name, profile) in enumerate(profiles.items()):
            layout = row_layout(timestamps, windows[key], profile)
            positions = np.asarray(documents[key]["alarms"][name], dtype="int64")
            raw[row, column] = score_alarm_rows(layout, profile, positions)
            null[row, column] = score_alarm_rows(layout, profile, [])
    count = sum(len(windows[key]) for key in keys)
    every = list(range(len(keys)))
    ours = {}
    for column, (name, profile) in enumerate(profiles.items()):
        total, baseline = float(raw[every, column].sum()), float(null[every, column].sum())
        ours[name] = (
            normalized_score(total, baseline, count, profile) if count else total - baseline
        )
    return {
        "ours": ours,
        "candidates": {name: candidate.label() for name, candidate in candidates.items()},
        "files": {
            key: {**documents[key], "raw": dict(zip(profiles, raw[row].tolist(), strict=True))}
            for row, key in enumerate(keys)
        },
    }
