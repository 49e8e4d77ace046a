"""``aiops nab evaluate --through-dagster`` and the NAB assets behind it (``nab_location``): the
in-sample choice run through real Dagster assets raises the alarms the core path raises and gets
the core path's scores, on the four short real files of the CI smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from aiops_assets.cli import main
from aiops_assets.cli.nab import format_evaluation
from aiops_assets.core import nab, nab_cv
from aiops_assets.core.store import ArtifactStore
from aiops_assets.core.telemetry import clock_repeats, load_nab
from aiops_assets.io import asset_ref_name
from aiops_assets.nab_location import (
    NAB_ALARMS_KEY,
    NAB_SERIES_KEY,
    NabDagsterError,
    alarms_run_config,
    candidate_from_winner,
    evaluate_through_dagster,
    nab_definitions,
)
from aiops_assets.runner import DATA_VERSION_TAG, materialize_selection, quiet
from aiops_assets_tests.core.test_nab_cv import SMOKE_FILES

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def core_alarms(root: Path, key: str, candidate: nab_cv.Candidate) -> list[int]:
    """The candidate's alarms by core calls alone: the loader, ``pager_for``, ``Pager.alarms``."""
    timestamps = nab.file_timestamps(root, key)
    kept = np.flatnonzero(~clock_repeats(pd.Series(timestamps)))
    frame = load_nab(root, files=[key], drop_clock_repeats=True)
    learn = int(np.searchsorted(kept, nab.probationary_length(len(timestamps)), "left"))
    pager = nab_cv.pager_for(
        candidate, period=nab_cv.rows_per_day(frame["timestamp"]), learn_rows=learn
    )
    return kept[pager.alarms(frame["value"].to_numpy(), learn_rows=learn)].tolist()


def test_both_paths_give_the_same_alarms_and_scores(
    nab_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["nab", "evaluate", str(nab_root), "--through-dagster", "--json"]
    for key in SMOKE_FILES:
        argv += ["--file", key]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "4 NAB file(s) through the Dagster assets" in captured.err
    dagster = result["dagster"]
    # Identical, not close: the same scorer over the same alarm rows, summed the same way.
    assert dagster["ours"] == result["ours"]["in_sample"]
    assert set(dagster["ours"]) == set(PROFILES)
    assert dagster["identical"] is True
    assert set(dagster["files"]) == set(SMOKE_FILES)
    raised = 0
    for key, stored in dagster["files"].items():
        # The table the evaluation chose from counted the standard choice's alarms per file.
        assert len(stored["alarms"]["standard"]) == result["files"][key]["alarms_in_sample"]
        for profile in PROFILES:
            candidate = candidate_from_winner(result["winner"][profile])
            assert stored["alarms"][profile] == core_alarms(nab_root, key, candidate)
            raised += len(stored["alarms"][profile])
        assert len(stored["alarms_sha256"]) == 64 and len(stored["series_sha256"]) == 64
    assert raised > 0  # the comparison is of real alarms, not of silence
    text = format_evaluation(result)
    assert "Through the Dagster assets (nab_series -> nab_alarms, 4 partitions" in text
    assert "identical to the core path's in-sample score" in text
    for profile in PROFILES:
        core = result["ours"]["in_sample"][profile]
        assert f"{profile} {dagster['ours'][profile]:.2f} (core {core:.2f})" in text
    different = {**result, "dagster": {**dagster, "identical": False}}
    assert "DIFFERENT from the core path's in-sample score" in format_evaluation(different)


def test_the_assets_are_content_addressed_and_run_the_named_candidate(
    nab_root: Path, tmp_path: Path
) -> None:
    key = "realKnownCause/rogue_agent_key_hold.csv"
    named = nab_cv.Candidate("ewma_6h", "ewma", nab_cv.RULES[0])  # a caller's own choice
    definitions = nab_definitions(nab_root, SMOKE_FILES, store_root=tmp_path / "store")
    store = ArtifactStore(tmp_path / "store")
    versions = []
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):
            run = materialize_selection(
                definitions,
                instance,
                dg.AssetSelection.assets(NAB_SERIES_KEY, NAB_ALARMS_KEY),
                partition_key=key,
                run_config=quiet(alarms_run_config({"standard": named})),
            )
            events = run.get_asset_materialization_events()
            versions.append(
                {
                    event.asset_key: event.materialization.tags[DATA_VERSION_TAG]
                    for event in events
                    if event.materialization.tags
                }
            )
    assert versions[0] == versions[1]  # the same bytes again: the same data version
    alarms_ref = store.require_ref(asset_ref_name(NAB_ALARMS_KEY, key))
    series_ref = store.require_ref(asset_ref_name(NAB_SERIES_KEY, key))
    assert versions[0] == {NAB_ALARMS_KEY: alarms_ref.sha256, NAB_SERIES_KEY: series_ref.sha256}
    document = store.get_json(alarms_ref)
    assert document["candidates"] == {"standard": named.label()}
    assert document["alarms"] == {"standard": core_alarms(nab_root, key, named)}
    series = store.get_frame(series_ref)
    kept = np.flatnonzero(~clock_repeats(pd.Series(nab.file_timestamps(nab_root, key))))
    assert series["file_row"].tolist() == kept.tolist()  # each row where NAB counts it
    assert "label" in series  # kept with the series, as snapshots keep it; the pager drops it


def test_a_run_without_a_candidate_fails_in_one_line(nab_root: Path, tmp_path: Path) -> None:
    with pytest.raises(NabDagsterError) as failure:
        evaluate_through_dagster(nab_root, SMOKE_FILES[:1], {}, work_dir=tmp_path)
    message = str(failure.value)
    assert message.startswith(f"{SMOKE_FILES[0]}: step nab_alarms failed: ")
    assert "needs at least one candidate" in message and "\n" not in message
