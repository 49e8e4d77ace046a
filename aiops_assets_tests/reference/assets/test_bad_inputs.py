"""The bad-input corpus through the real pipeline: every case ends as its manifest says.

Each file of ``aiops_assets_tests/data/bad_inputs/`` is the only file of a fresh directory source,
and ``telemetry_snapshot[2026-01-05]`` is materialized from it in-process, in one Dagster instance
and one artifact store that already hold the good snapshot of that day. A case must end in a clear
``dagster.Failure`` naming file, column and lines (``error``), or in a failed blocking check with a
quarantine record naming columns, rows and expectation (``quarantine``), or in a valid snapshot
(``accepted``): never an unhandled exception, never a silent snapshot, and never a lost or replaced
good snapshot.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from aiops_assets.core.quality import list_quarantine
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.reference.definitions import BASELINE_CHECKS, build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import DATA_VERSION_TAG, materialize_selection
from aiops_assets_tests.paths import BAD_INPUTS

# A pipeline run per corpus file (55 of them): the largest share of the suite's time.
pytestmark = pytest.mark.slow

CORPUS = BAD_INPUTS
MANIFEST_FILE = "MANIFEST.yaml"
GENERATOR_FILE = "make_corpus.py"
MANIFEST: dict[str, Any] = yaml.safe_load((CORPUS / MANIFEST_FILE).read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = MANIFEST["cases"]
PARTITION: str = MANIFEST["partition"]
BASELINE: str = MANIFEST["baseline"]
SNAPSHOT = "telemetry_snapshot"
SNAPSHOT_KEY = dg.AssetKey(SNAPSHOT)
SNAPSHOT_REF = f"assets/{SNAPSHOT}/{PARTITION}"
ERROR_CHECK = "telemetry_default_error"
OUTCOMES = ("error", "quarantine", "accepted")
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class Baseline:
    """One instance and one store, holding the good snapshot of the partition."""

    instance: dg.DagsterInstance
    root: Path
    store: ArtifactStore
    good_ref: ArtifactRef
    good_source: Path


def settings_for(root: Path, source: Path) -> PipelineSettings:
    return PipelineSettings(
        start=date.fromisoformat(PARTITION),
        days=1,
        home=root / "aiops",
        source_kind="directory",
        source_path=str(source),
    )


def materialize(
    root: Path, source: Path, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return materialize_selection(
        build_definitions(settings_for(root, source)),
        instance,
        # Ingest alone: the checks that read the training-window baseline need a trained home.
        dg.AssetSelection.assets(SNAPSHOT) - dg.AssetSelection.checks(*BASELINE_CHECKS),
        partition_key=PARTITION,
        run_config=QUIET,
        raise_on_error=False,
    )


def snapshot_versions(run: dg.ExecuteInProcessResult) -> list[str]:
    versions = []
    for event in run.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == SNAPSHOT_KEY:
            versions.append((materialization.tags or {}).get(DATA_VERSION_TAG, ""))
    return versions


def single_file_source(parent: Path, file_name: str) -> Path:
    source = parent / "source"
    source.mkdir()
    shutil.copyfile(CORPUS / file_name, source / file_name)
    return source


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    root = tmp_path_factory.mktemp("bad_inputs")
    good_source = single_file_source(root, BASELINE)
    with dg.instance_for_test() as instance:
        run = materialize(root, good_source, instance)
        assert run.success, "the baseline file must give a good snapshot"
        store = ArtifactStore(settings_for(root, good_source).store_root)
        good_ref = store.get_ref(SNAPSHOT_REF)
        assert good_ref is not None
        assert snapshot_versions(run) == [good_ref.sha256]
        yield Baseline(instance, root, store, good_ref, good_source)


def test_the_manifest_and_the_folder_list_the_same_cases() -> None:
    listed = [case["file"] for case in CASES]
    assert len(listed) >= 30
    assert len(set(listed)) == len(listed), "a file is listed twice"
    on_disk = {
        entry.name
        for entry in CORPUS.iterdir()
        if entry.is_file() and entry.name not in (MANIFEST_FILE, GENERATOR_FILE)
    }
    assert set(listed) == on_disk
    assert BASELINE in listed
    for case in CASES:
        assert case["outcome"] in OUTCOMES, case
        assert case["exercises"].strip(), case
        if case["outcome"] == "accepted":
            assert case.get("snapshot") in ("same_as_good", "new"), case
        else:
            assert case["fragments"], f"{case['file']}: a rejected case must say what to report"
    outcomes = {outcome: sum(case["outcome"] == outcome for case in CASES) for outcome in OUTCOMES}
    assert outcomes["error"] >= 10 and outcomes["quarantine"] >= 5, outcomes


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_each_input_ends_as_the_manifest_says(
    baseline: Baseline, case: dict[str, Any], tmp_path: Path
) -> None:
    source = single_file_source(tmp_path, case["file"])
    fragments = [
        fragment.replace("{path}", str(source / case["file"])).replace("{source}", str(source))
        for fragment in case["fragments"]
    ]
    run = materialize(baseline.root, source, baseline.instance)
    failures = run.get_step_failure_events()
    checks = {evaluation.check_name: evaluation for evaluation in run.get_asset_check_evaluations()}
    versions = snapshot_versions(run)
    store = baseline.store

    if case["outcome"] == "error":
        assert not versions, "a malformed input must not become a snapshot"
        assert len(failures) == 1
        error = failures[0].step_failure_data.error
        assert error is not None
        # A dagster Failure is the clear, expected kind of failure; anything else is a bug.
        assert error.cls_name == "Failure", error.to_string()
        for fragment in fragments:
            assert fragment in error.message, f"{fragment!r} not in {error.message!r}"
        assert not any(evaluation.passed for evaluation in checks.values())

    elif case["outcome"] == "quarantine":
        # The blocking check stops the step (so nothing downstream runs), and nothing else does.
        errors = [event.step_failure_data.error for event in failures]
        assert [error.cls_name if error else None for error in errors] == [
            "DagsterAssetCheckFailedError"
        ], errors
        assert not versions, "a quarantined input must not become a snapshot"
        evaluation = checks[ERROR_CHECK]
        assert not evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        records = [
            record
            for record in list_quarantine(store, SNAPSHOT)
            if record.source == f"directory({source})"
        ]
        assert len(records) == 1
        record = records[0]
        assert record.partition == PARTITION
        assert record.artifact.sha256 != baseline.good_ref.sha256
        assert store.verify(record.artifact), "the rejected snapshot is kept for inspection"
        assert record.report["outcomes"], "the record carries the full report"
        filed_as = evaluation.metadata["quarantined_as"]
        assert record.artifact.sha256[:16] in str(getattr(filed_as, "value", filed_as))
        for fragment in fragments:
            assert fragment in record.message, f"{fragment!r} not in {record.message!r}"

    else:
        assert run.success and not failures
        assert checks[ERROR_CHECK].passed
        assert len(versions) == 1
        current = store.get_ref(SNAPSHOT_REF)
        assert current is not None and current.sha256 == versions[0]
        if case["snapshot"] == "same_as_good":
            assert versions[0] == baseline.good_ref.sha256
        else:
            # A different valid day legitimately becomes current; put the baseline back so every
            # other case is judged against the same good snapshot.
            assert versions[0] != baseline.good_ref.sha256
            restored = materialize(baseline.root, baseline.good_source, baseline.instance)
            assert snapshot_versions(restored) == [baseline.good_ref.sha256]

    assert store.get_ref(SNAPSHOT_REF) == baseline.good_ref, "the good snapshot was replaced"
    assert store.verify(baseline.good_ref)
