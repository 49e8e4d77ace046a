"""The hourly option (``AIOPS_PARTITION=hourly``) end to end, as the code location builds it.

A day and a few hours of a two-service generated scenario go through every stage the daily
pipeline has: ingest (snapshot, features and their checks), training with the promotion gate,
scoring with every check (drift, baseline quality, label health, performance on mature labels
and estimated ones), the monitoring report and the schedule. Everything is read back from the
instance and the store, by partition hour.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.core import telemetry
from aiops_assets.core.store import ArtifactStore
from aiops_assets.keys import DAILY_JOB, FEATURES_KEY, MONITORING_REPORT_KEY, SCORES_KEY
from aiops_assets.reference.automation import INGEST_SCHEDULE
from aiops_assets.reference.definitions import (
    REJUDGE_JOB,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import TelemetrySourceResource, close_ledgers
from aiops_assets.runner import daily_partition_keys, materialize_selection

# Whole-graph materializations in a fresh place: the full lane's, like test_pipeline.py.
pytestmark = pytest.mark.slow

QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Day 1's 24 hours and day 2's first two are history; training holds day 2's hours out.
HISTORY = [f"2026-01-05T{hour:02d}" for hour in range(24)] + ["2026-01-06T00", "2026-01-06T01"]
# Served after training, as the schedule would run them.
SERVED = ["2026-01-06T02", "2026-01-06T03"]
SCORED = ["2026-01-06T00", "2026-01-06T01", *SERVED]
ROWS_PER_HOUR = 12  # five-minute samples


@dataclass
class HourlyRun:
    settings: PipelineSettings
    definitions: dg.Definitions
    instance: dg.DagsterInstance
    scoring: dict[str, dg.ExecuteInProcessResult]
    ingest: dict[str, dg.ExecuteInProcessResult]
    # An hour and a half later on the clock: what the late-label sensor asked for, and its run.
    rejudge_requests: list[dg.RunRequest]
    rejudged: dg.ExecuteInProcessResult


def _definitions(settings: PipelineSettings, home: Path) -> dg.Definitions:
    """The location's definitions with a two-service scenario (the default has six)."""
    scenario = telemetry.Scenario(
        start=settings.start, days=settings.days, services=("api", "db"), seed=11
    )
    path = home / "scenario.json"
    path.write_text(json.dumps(scenario.to_dict()))
    built = build_definitions(settings)
    resources = dict(built.resources or {})
    resources["telemetry_source"] = TelemetrySourceResource(
        kind="scenario", scenario_file=str(path)
    )
    return dg.Definitions(
        assets=built.assets,
        asset_checks=built.asset_checks,
        schedules=built.schedules,
        sensors=built.sensors,
        jobs=built.jobs,
        resources=resources,
    )


def _rejudge(
    definitions: dg.Definitions, instance: dg.DagsterInstance
) -> tuple[list[dg.RunRequest], dg.ExecuteInProcessResult]:
    """One tick of the late-label sensor, and the run of its one request, as the daemon would."""
    repository = definitions.get_repository_def()
    context = dg.build_sensor_context(
        instance=instance, repository_def=repository, resources=definitions.resources
    )
    tick = repository.get_sensor_def("rejudge_on_mature_labels").evaluate_tick(context)
    requests = list(tick.run_requests or [])
    assert len(requests) == 1, tick.skip_message
    [request] = requests
    # The daemon launches it as this subset of the job: the check alone, on its partition.
    judge_only = definitions.resolve_job_def(str(request.job_name or REJUDGE_JOB)).get_subset(
        asset_selection=set(), asset_check_selection=set(request.asset_check_keys or [])
    )
    run = judge_only.execute_in_process(
        run_config=QUIET,
        instance=instance,
        partition_key=request.partition_key,
        tags=request.tags,
    )
    assert run.success
    return requests, run


def _run(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: dg.AssetSelection,
    partition: str | None = None,
    config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    result = materialize_selection(
        definitions,
        instance,
        selection,
        partition_key=partition,
        run_config={**QUIET, **(config or {})},
    )
    assert result.success, partition
    return result


@pytest.fixture(scope="module")
def hourly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HourlyRun]:
    home = tmp_path_factory.mktemp("hourly")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # Only these settings: a lane's own AIOPS_* (a PostgreSQL ledger, a source) stay out.
        for name in [name for name in os.environ if name.startswith("AIOPS_")]:
            monkeypatch.delenv(name)
        for name, value in {
            "AIOPS_PARTITION": "hourly",
            "AIOPS_START": "2026-01-05",
            "AIOPS_DAYS": "2",
            "AIOPS_HOME": str(home / "aiops"),
            "AIOPS_LAG": "45m",
            # The fixed clock is 2026-01-07T00:45: hours that ended 22 h before it have mature
            # labels (day 2's 00:00 and 01:00), the later ones are still estimated.
            "AIOPS_LABEL_DELAY": "22h",
        }.items():
            monkeypatch.setenv(name, value)
        settings = PipelineSettings.from_env()
        definitions = _definitions(settings, home)
        with dg.DagsterInstance.ephemeral() as instance:
            try:
                ingest = {
                    hour: _run(definitions, instance, ingest_selection(), hour) for hour in HISTORY
                }
                _run(
                    definitions,
                    instance,
                    dg.AssetSelection.assets(*TRAINING_ASSETS),
                    config={
                        "ops": {
                            "training_set": {"config": {"until": HISTORY[-1], "holdout_days": 1}}
                        }
                    },
                )
                for hour in SERVED:
                    ingest[hour] = _run(definitions, instance, ingest_selection(), hour)
                scoring = {}
                for hour in SCORED:
                    scoring[hour] = _run(definitions, instance, scoring_selection(), hour)
                    _run(
                        definitions,
                        instance,
                        dg.AssetSelection.assets(MONITORING_REPORT_KEY),
                        hour,
                    )
                # 01:30: the 02:00 hour's labels matured at 01:00, the 03:00 hour's wait for 02:00.
                monkeypatch.setenv("AIOPS_NOW", "2026-01-07T01:30")
                later = _definitions(PipelineSettings.from_env(), home)
                requests, rejudged = _rejudge(later, instance)
                yield HourlyRun(
                    settings, definitions, instance, scoring, ingest, requests, rejudged
                )
            finally:
                close_ledgers()


def _latest(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> dict[str, Any]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    assert records, f"{key.to_user_string()}[{partition}] was not materialized"
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {
        name: getattr(value, "value", value) for name, value in materialization.metadata.items()
    }


def test_the_partitions_are_the_hours_of_the_configured_days(hourly: HourlyRun) -> None:
    keys = daily_partition_keys(hourly.definitions)
    assert (keys[0], keys[1], keys[-1], len(keys)) == (
        "2026-01-05T00",
        "2026-01-05T01",
        "2026-01-06T23",
        48,
    )
    graph = hourly.definitions.resolve_asset_graph()
    for key in (FEATURES_KEY, SCORES_KEY, MONITORING_REPORT_KEY):
        assert isinstance(graph.get(key).partitions_def, dg.HourlyPartitionsDefinition), key


def test_features_of_an_hour_read_the_24_hours_before_it_and_hold_only_that_hour(
    hourly: HourlyRun,
) -> None:
    metadata = _latest(hourly.instance, FEATURES_KEY, "2026-01-06T02")
    read = str(metadata["history_partitions"]).split(", ")
    # 2026-01-05T02 to 2026-01-06T02: the hour itself and the 24 before it, and no later one.
    assert read == [*HISTORY[2:], "2026-01-06T02"]
    store = ArtifactStore(hourly.settings.store_root)
    frame = store.get_frame(str(metadata["sha256"]))
    assert frame["timestamp"].min() == pd.Timestamp("2026-01-06 02:00")
    assert frame["timestamp"].max() < pd.Timestamp("2026-01-06 03:00")
    assert len(frame) == 2 * ROWS_PER_HOUR
    # The first hour of the range had nothing before it: it reads itself only.
    first = _latest(hourly.instance, FEATURES_KEY, "2026-01-05T00")
    assert first["history_partitions"] == "2026-01-05T00"


def test_the_ingest_checks_judge_each_hour(hourly: HourlyRun) -> None:
    for hour, run in hourly.ingest.items():
        evaluations = run.get_asset_check_evaluations()
        checked = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
        assert ("features", "point_in_time_correct") in checked, hour
        assert any(name == "telemetry_snapshot" for name, _ in checked), hour
        assert {e.partition for e in evaluations} == {hour}
        [warn] = [e for e in evaluations if e.check_name == "telemetry_default_warn"]
        table: Any = warn.metadata["expectations"]
        failed = {row.data["expectation"] for row in table.records if not row.data["passed"]}
        # An hour of two services is 24 rows: a short window, not a service id per row. Only an
        # incident hour's label rate may warn.
        assert failed <= {"expect_column_mean_to_be_between"}, (hour, failed)


def test_the_gate_promotes_on_the_checks_of_every_trained_hour(hourly: HourlyRun) -> None:
    training = _latest(hourly.instance, dg.AssetKey("training_set"))
    assert training["partitions"] == ", ".join(HISTORY)
    champion = _latest(hourly.instance, dg.AssetKey("champion_model"))
    # The gate looked the blocking checks up per hour: by day it would find none and refuse.
    assert champion["decision"] == "promoted", champion.get("reason")
    baseline = _latest(hourly.instance, dg.AssetKey("score_baseline"))
    assert baseline["calibrated_on_partitions"] == 24, "one chunk per training hour"
    reference = _latest(hourly.instance, dg.AssetKey("drift_baseline"))
    # Three days' worth of hours is more than exist: every hour ingested before training.
    assert reference["reference_partitions"] == ", ".join(HISTORY)


def test_every_scoring_check_runs_on_its_hour(hourly: HourlyRun) -> None:
    expected = {
        ("features", "drift"),
        ("anomaly_scores", "drift"),
        ("anomaly_scores", "performance"),
        ("anomaly_scores", "label_health"),
        ("telemetry_snapshot", "baseline_quality"),
        ("telemetry_snapshot", "label_health"),
    }
    for hour, run in hourly.scoring.items():
        evaluations = run.get_asset_check_evaluations()
        assert {(e.asset_key.to_user_string(), e.check_name) for e in evaluations} == expected
        assert {e.partition for e in evaluations} == {hour}
        scores = _latest(hourly.instance, SCORES_KEY, hour)
        assert scores["dagster/row_count"] == 2 * ROWS_PER_HOUR


def test_performance_is_judged_on_mature_hours_and_estimated_on_recent_ones(
    hourly: HourlyRun,
) -> None:
    status = {}
    for hour, run in hourly.scoring.items():
        [performance] = [
            e for e in run.get_asset_check_evaluations() if e.check_name == "performance"
        ]
        status[hour] = performance.metadata["label_status"].value
    assert status == {
        "2026-01-06T00": "mature",
        "2026-01-06T01": "mature",
        "2026-01-06T02": "estimate",
        "2026-01-06T03": "estimate",
    }


def test_the_monitoring_report_lays_the_verdicts_out_by_hour(hourly: HourlyRun) -> None:
    metadata = _latest(hourly.instance, MONITORING_REPORT_KEY, "2026-01-06T03")
    rows = {row.data["partition"]: row.data for row in metadata["by_partition"].records}
    # The default window is 14 partitions: 14 hours ending with the report's own.
    assert list(rows) == [*HISTORY[-12:], *SERVED]
    assert metadata["partitions"] == 14
    for hour in SCORED:
        assert rows[hour]["drift"] in ("pass", "WARN", "FAIL"), hour
        assert rows[hour]["quality"] in ("pass", "WARN", "FAIL"), hour
    assert [rows[hour]["performance_basis"] for hour in SCORED] == [
        "mature",
        "mature",
        "estimate",
        "estimate",
    ]
    # Hours never scored have no verdict to show.
    assert rows[HISTORY[-3]]["performance"] == ""
    assert "Monitoring, 2026-01-05T14 to 2026-01-06T03" in str(metadata["report"])


def test_the_hourly_schedule_fires_each_hour_its_lag_after_the_hour_closed(
    hourly: HourlyRun,
) -> None:
    schedule = hourly.definitions.resolve_schedule_def(INGEST_SCHEDULE)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("45 * * * *", "UTC")
    tick = datetime(2026, 1, 6, 5, 45, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    [request] = list(schedule.evaluate_tick(context).run_requests or [])
    # 05:45 less the 45-minute lag is 05:00: the 04:00 hour just closed.
    assert (request.job_name, request.partition_key) == (DAILY_JOB, "2026-01-06T04")


def test_an_estimated_hour_is_judged_again_once_its_labels_matured(hourly: HourlyRun) -> None:
    [request] = hourly.rejudge_requests
    assert request.partition_key == "2026-01-06T02", "03:00's labels are not mature yet"
    [evaluation] = hourly.rejudged.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.partition) == ("performance", "2026-01-06T02")
    assert evaluation.metadata["label_status"].value == "mature"
    assert not hourly.rejudged.get_asset_materialization_events(), "the scores are not recomputed"
