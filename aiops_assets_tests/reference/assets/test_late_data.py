"""Late data through the reference pipeline, from a directory source.

A day's export first lands without its last hours; the pipeline ingests, trains and scores. The
missing rows then arrive in the folder and the day is re-ingested: it must become a new snapshot
version while the old one stays in the store, readable and verifiable; the change log must say
"late data (+N rows)"; the downstream partitions that read the day must be out of date and
requested by the automation condition, once; and the champion trained before the late rows must
still reproduce from the store.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.changelog import collect_changes
from aiops_assets.core import telemetry
from aiops_assets.core.incidents import Change
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.keys import CHAMPION_KEY, FEATURES_KEY, SCORES_KEY, SNAPSHOT_KEY
from aiops_assets.metadata import REVISION_KEY
from aiops_assets.reference.definitions import (
    BASELINE_CHECKS,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.settings import DEFAULT_SEED, PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import DATA_VERSION_TAG, daily_partition_keys, materialize_selection
from aiops_assets_tests.cli.process import aiops_process

# A whole short pipeline (ingest, train, score) before the late rows: the full lane's.
pytestmark = pytest.mark.slow

START = date(2026, 1, 5)
DAYS = 6
LATE_DAY = "2026-01-09"
NEXT_DAY = "2026-01-10"  # its features read the late day as history
TRAINED_UNTIL = LATE_DAY
# The export first stops at 18:00; the last six hours of every service arrive later.
LATE_FROM = pd.Timestamp(f"{LATE_DAY} 18:00")
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SNAPSHOT_ONLY = dg.AssetSelection.assets(SNAPSHOT_KEY) - dg.AssetSelection.checks(*BASELINE_CHECKS)
AUTOMATED = dg.AssetSelection.assets(FEATURES_KEY, SCORES_KEY)


@dataclass
class LateDay:
    """The pipeline's state after the late rows were re-ingested."""

    settings: PipelineSettings
    instance: dg.DagsterInstance
    definitions: dg.Definitions
    store: ArtifactStore
    day_rows: int  # the late day's rows once complete
    late_rows: dict[str, int]
    old_ref: ArtifactRef
    new_ref: ArtifactRef
    read_before: dict[str, str]  # the late day's version each downstream day's features read
    requested: dict[dg.AssetKey, set[str]]  # what automation asked for after the re-ingest
    requested_before: int  # ... and before it (nothing had changed)
    requested_after_rerun: int  # ... and once the requested runs are done
    re_ingested_at: datetime


def _scenario_frame() -> pd.DataFrame:
    scenario = telemetry.default_scenario(start=START, days=DAYS, seed=DEFAULT_SEED)
    return telemetry.generate(scenario, START, START + timedelta(days=DAYS))


def _write_days(frame: pd.DataFrame, folder: Path) -> None:
    """One CSV per day (every service in it, in time order), the layout of a daily export."""
    folder.mkdir(parents=True, exist_ok=True)
    for day, rows in frame.groupby(frame[telemetry.TIMESTAMP].dt.date, sort=True):
        rows.to_csv(folder / f"{day}.csv", index=False)


def _append(folder: Path, day: str, rows: pd.DataFrame) -> None:
    """Late rows land at the end of their day's file: still in time order per service."""
    rows.to_csv(folder / f"{day}.csv", mode="a", header=False, index=False)


def _latest(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    assert records and records[0].asset_materialization is not None, f"{key}[{partition}]"
    return records[0].asset_materialization


def _run(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: dg.AssetSelection | list[str],
    partition: str | None = None,
    run_config: dict[str, Any] | None = None,
) -> None:
    run = materialize_selection(
        definitions,
        instance,
        selection,
        partition_key=partition,
        run_config={**QUIET, **(run_config or {})},
    )
    assert run.success, f"{selection}[{partition}] failed"


def _late_day_read(instance: dg.DagsterInstance) -> dict[str, str]:
    """Which version of the late day's snapshot the current features of each day read."""
    read = {}
    for day in (LATE_DAY, NEXT_DAY):
        history = _latest(instance, FEATURES_KEY, day).metadata["history_snapshots"].value
        assert isinstance(history, dict)
        read[day] = history[LATE_DAY]
    return read


def _requested(result: Any) -> dict[dg.AssetKey, set[str]]:
    return {
        key: set(result.get_requested_partitions(key))
        for key in (SNAPSHOT_KEY, FEATURES_KEY, SCORES_KEY, CHAMPION_KEY)
        if result.get_num_requested(key)
    }


@pytest.fixture(scope="module")
def late_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LateDay]:
    root = tmp_path_factory.mktemp("late_data")
    frame = _scenario_frame()
    late = (frame[telemetry.TIMESTAMP] >= LATE_FROM) & (
        frame[telemetry.TIMESTAMP] < LATE_FROM.normalize() + pd.Timedelta(days=1)
    )
    source = root / "source"
    _write_days(frame[~late], source)
    settings = PipelineSettings(
        start=START,
        days=DAYS,
        home=root / "aiops",
        source_kind="directory",
        source_path=str(source),
    )
    definitions = build_definitions(settings)
    store = ArtifactStore(settings.store_root)
    with dg.DagsterInstance.ephemeral() as instance:
        days = daily_partition_keys(definitions)
        for day in days:
            _run(definitions, instance, ingest_selection(), day)
        training = {"ops": {"training_set": {"config": {"until": TRAINED_UNTIL}}}}
        _run(definitions, instance, list(TRAINING_ASSETS), run_config=training)
        for day in days:
            _run(definitions, instance, scoring_selection(), day)
        old_ref = store.require_ref(f"assets/telemetry_snapshot/{LATE_DAY}")
        read_before = _late_day_read(instance)
        tick = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=AUTOMATED
        )
        requested_before = tick.total_requested

        _append(source, LATE_DAY, frame[late])
        re_ingested_at = datetime.now(UTC)
        _run(definitions, instance, SNAPSHOT_ONLY, LATE_DAY)
        tick = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=AUTOMATED, cursor=tick.cursor
        )
        requested = _requested(tick)
        # Do what automation asked, as its sensor's runs would, then ask again.
        for day in sorted(requested.get(FEATURES_KEY, set())):
            _run(definitions, instance, ["features"], day)
        for day in sorted(requested.get(SCORES_KEY, set())):
            _run(definitions, instance, ["anomaly_scores"], day)
        tick = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=AUTOMATED, cursor=tick.cursor
        )
        try:
            yield LateDay(
                settings=settings,
                instance=instance,
                definitions=definitions,
                store=store,
                day_rows=int(
                    (frame[telemetry.TIMESTAMP].dt.strftime("%Y-%m-%d") == LATE_DAY).sum()
                ),
                late_rows={
                    str(service): int(count)
                    for service, count in frame[late].groupby(telemetry.SERVICE).size().items()
                },
                old_ref=old_ref,
                new_ref=store.require_ref(f"assets/telemetry_snapshot/{LATE_DAY}"),
                read_before=read_before,
                requested=requested,
                requested_before=requested_before,
                requested_after_rerun=tick.total_requested,
                re_ingested_at=re_ingested_at,
            )
        finally:
            close_ledgers()


def test_a_re_ingest_with_late_rows_is_a_new_version_and_the_old_one_stays(
    late_day: LateDay,
) -> None:
    old, new = late_day.old_ref, late_day.new_ref
    assert old.sha256 != new.sha256, "the late rows make a new content-addressed version"
    snapshot = _latest(late_day.instance, SNAPSHOT_KEY, LATE_DAY)
    assert (snapshot.tags or {})[DATA_VERSION_TAG] == new.sha256
    # The old version is still there, under its own hash, and reads back verified.
    assert late_day.store.verify(old) and late_day.store.verify(new)
    before = late_day.store.get_frame(old)
    after = late_day.store.get_frame(new)
    assert len(after) == late_day.day_rows
    assert len(after) - len(before) == sum(late_day.late_rows.values())
    assert before[telemetry.TIMESTAMP].max() < LATE_FROM <= after[telemetry.TIMESTAMP].max()
    # The new version is the old one plus rows: every old row is in it, unchanged.
    keys = [telemetry.SERVICE, telemetry.TIMESTAMP]
    kept = after.merge(before[keys], on=keys)
    pd.testing.assert_frame_equal(kept, before, check_like=True)


def test_the_snapshot_records_what_the_re_ingest_added(late_day: LateDay) -> None:
    revision = _latest(late_day.instance, SNAPSHOT_KEY, LATE_DAY).metadata[REVISION_KEY].value
    assert isinstance(revision, dict)
    assert revision["previous_sha256"] == late_day.old_ref.sha256
    assert revision["rows_added_by_service"] == late_day.late_rows
    assert (revision["rows_changed"], revision["rows_removed"]) == (0, 0)
    assert revision["late_data"] is True
    first = late_day.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SNAPSHOT_KEY, asset_partitions=[LATE_DAY]),
        limit=2,
    ).records[-1]
    assert first.asset_materialization is not None
    assert REVISION_KEY not in first.asset_materialization.metadata, "a first ingest has no past"


def test_the_change_log_says_late_data_with_the_rows_added(late_day: LateDay) -> None:
    ledger = Ledger.from_env(
        late_day.settings.ledger_url, default_key_file=late_day.settings.audit_key_file
    )
    try:
        changes = collect_changes(
            late_day.instance, ledger, late_day.definitions, since=late_day.re_ingested_at
        )
    finally:
        ledger.dispose()
    snapshot_changes = [change for change in changes if change.subject == "telemetry_snapshot"]
    [change] = snapshot_changes
    total = sum(late_day.late_rows.values())
    assert change.kind == "data" and change.partition == LATE_DAY
    assert f"telemetry_snapshot[{LATE_DAY}]: late data (+{total} rows)" in change.summary
    assert (change.before, change.after) == (late_day.old_ref.sha256, late_day.new_ref.sha256)
    assert change.details["late_rows_by_service"] == late_day.late_rows
    # Downstream re-ran on it: those are data changes too, but nobody calls them late data.
    downstream = [c for c in changes if c.subject in ("features", "anomaly_scores")]
    assert {(c.subject, c.partition) for c in downstream} >= {("features", LATE_DAY)}
    assert not [c for c in downstream if "late data" in c.summary]
    assert _late(changes) == [change]


def _late(changes: list[Change]) -> list[Change]:
    return [change for change in changes if "late data" in change.summary]


def test_downstream_of_the_late_day_is_stale_and_automation_re_runs_it_once(
    late_day: LateDay,
) -> None:
    # Both days' features had been computed from the old version: they are out of date.
    old, new = late_day.old_ref.sha256, late_day.new_ref.sha256
    assert late_day.read_before == {LATE_DAY: old, NEXT_DAY: old}
    assert late_day.requested_before == 0, "nothing is requested before anything changed"
    # The late day's features and scores, and the next day's (its features read the late day
    # as history); not the snapshot (ingest is scheduled) and not the champion (a person's call).
    assert late_day.requested == {
        FEATURES_KEY: {LATE_DAY, NEXT_DAY},
        SCORES_KEY: {LATE_DAY, NEXT_DAY},
    }
    assert _late_day_read(late_day.instance) == {LATE_DAY: new, NEXT_DAY: new}
    assert late_day.requested_after_rerun == 0, "once re-run, nothing is requested again"


@pytest.mark.subprocess
def test_the_champion_trained_before_the_late_rows_still_reproduces(
    late_day: LateDay, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(late_day.settings.home, home)
    completed = aiops_process("reproduce", "champion", "--home", str(home), cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "REPRODUCED" in completed.stdout and "NOT REPRODUCED" not in completed.stdout


def test_a_rewritten_row_is_a_revision_not_late_data(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    day = START + timedelta(days=1)
    frame = _scenario_frame()
    frame = frame[frame[telemetry.TIMESTAMP].dt.date == day].reset_index(drop=True)
    late = frame[telemetry.TIMESTAMP] >= pd.Timestamp(day) + pd.Timedelta(hours=20)
    source = tmp_path / "source"
    _write_days(frame[~late], source)
    settings = PipelineSettings(
        start=day, days=1, home=tmp_path / "aiops", source_kind="directory", source_path=str(source)
    )
    definitions = build_definitions(settings)
    try:
        _run(definitions, instance, SNAPSHOT_ONLY, day.isoformat())
        since = datetime.now(UTC)
        rewritten = frame.copy()
        rewritten.loc[0, "cpu_pct"] = float(rewritten.loc[0, "cpu_pct"]) + 1.0
        _write_days(rewritten, source)  # the late rows, and one old row rewritten
        _run(definitions, instance, SNAPSHOT_ONLY, day.isoformat())
        ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        try:
            changes = collect_changes(instance, ledger, definitions, since=since)
        finally:
            ledger.dispose()
    finally:
        close_ledgers()
    [change] = [c for c in changes if c.subject == "telemetry_snapshot"]
    assert not _late(changes), change.summary
    added = int(late.sum())
    assert f"+{added} rows, 1 rows changed" in change.summary
    assert change.details["revision"]["late_data"] is False
