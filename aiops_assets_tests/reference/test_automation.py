"""The live code location: open-ended partitions on a clock, schedules, automation, freshness.

Everything through the public definitions: the partition keys the assets carry, the schedules'
run requests for a tick, the policies on the asset graph.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.audits import AUDIT_VERIFY_JOB
from aiops_assets.keys import (
    CHAMPION_KEY,
    DAILY_JOB,
    FEATURES_KEY,
    MONITORING_REPORT_KEY,
    SCORES_KEY,
    SNAPSHOT_KEY,
)
from aiops_assets.reference.automation import (
    AUDIT_VERIFY_SCHEDULE,
    AUTOMATION_SENSOR,
    INGEST_SCHEDULE,
    REPRODUCIBILITY_JOB,
    REPRODUCIBILITY_SCHEDULE,
)
from aiops_assets.reference.definitions import (
    REPRODUCIBLE_CHECK,
    SNAPSHOT_BASELINE_CHECKS,
    build_definitions,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import daily_partition_keys, materialize_selection

SCHEDULES = (INGEST_SCHEDULE, REPRODUCIBILITY_SCHEDULE, AUDIT_VERIFY_SCHEDULE)
LIVE_SENSORS = (AUTOMATION_SENSOR, "alert_on_stale_asset", "alert_on_run_failure")


def _settings(**env: str) -> PipelineSettings:
    return PipelineSettings.from_env(env)


def _keys(settings: PipelineSettings) -> list[str]:
    return daily_partition_keys(build_definitions(settings))


def _tick(definitions: dg.Definitions, name: str, at: datetime) -> list[dg.RunRequest]:
    schedule = definitions.resolve_schedule_def(name)
    context = dg.build_schedule_context(scheduled_execution_time=at)
    return list(schedule.evaluate_tick(context).run_requests or [])


def test_the_default_fixed_clock_covers_exactly_the_configured_days() -> None:
    keys = _keys(_settings(AIOPS_DAYS="9"))
    assert (keys[0], keys[-1], len(keys)) == ("2026-01-05", "2026-01-13", 9)


@pytest.mark.parametrize(
    ("now", "lag", "last"),
    [
        # 00:45 minus 30 minutes is past midnight: the 9th is closed.
        ("2026-01-10T00:45", "30m", "2026-01-09"),
        # 00:20 minus 30 minutes is still the 9th: it waits for its lag.
        ("2026-01-10T00:20", "30m", "2026-01-08"),
        # A lag of more than a day holds a whole extra day back.
        ("2026-01-10T12:00", "1d13h", "2026-01-07"),
    ],
)
def test_a_fixed_clock_closes_the_partitions_its_lag_allows(now: str, lag: str, last: str) -> None:
    keys = _keys(_settings(AIOPS_NOW=now, AIOPS_LAG=lag))
    assert (keys[0], keys[-1]) == ("2026-01-05", last)


def test_the_hourly_option_partitions_by_hour_on_the_same_clock() -> None:
    keys = _keys(_settings(AIOPS_PARTITION="hourly", AIOPS_NOW="2026-01-05T03:40", AIOPS_LAG="45m"))
    # 03:40 less 45 minutes is 02:55: the 02:00 hour is not closed yet.
    assert keys == ["2026-01-05T00", "2026-01-05T01"]
    whole_days = _keys(_settings(AIOPS_PARTITION="hourly", AIOPS_DAYS="2"))
    assert (whole_days[0], whole_days[-1], len(whole_days)) == (
        "2026-01-05T00",
        "2026-01-06T23",
        48,
    )


def test_the_live_clock_has_open_ended_partitions_that_grow_with_time() -> None:
    definitions = build_definitions(_settings(AIOPS_NOW="live", AIOPS_LAG="1d2h"))
    partitions_def = definitions.resolve_asset_graph().get(SNAPSHOT_KEY).partitions_def
    assert isinstance(partitions_def, dg.DailyPartitionsDefinition)
    assert partitions_def.end is None, "no end date"
    assert partitions_def.end_offset == -1, "the lag's whole day holds one partition back"
    for effective, last in (
        (datetime(2026, 2, 1, 6, tzinfo=UTC), "2026-01-30"),
        (datetime(2026, 3, 1, 6, tzinfo=UTC), "2026-02-27"),
    ):
        with dg.partition_loading_context(effective_dt=effective):
            assert partitions_def.get_last_partition_key() == last


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIOPS_LAG": "half an hour"}, "a lag must look like 30m"),
        ({"AIOPS_NOW": "yesterday"}, "AIOPS_NOW must be 'live' or an ISO"),
        ({"AIOPS_PARTITION": "weekly"}, "partition granularity must be one of"),
        ({"AIOPS_SCHEDULES": "maybe"}, "AIOPS_SCHEDULES must be on or off"),
    ],
)
def test_a_bad_clock_setting_is_refused_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        _settings(**env)
    assert "\n" not in str(raised.value)


def test_a_clock_before_the_start_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="closes no partition after the start 2026-01-05"):
        build_definitions(_settings(AIOPS_NOW="2026-01-05T12:00"))


def test_every_schedule_and_live_sensor_is_stopped_by_default_and_on_by_config() -> None:
    for settings, status in (
        (_settings(), "STOPPED"),
        (_settings(AIOPS_SCHEDULES="on"), "RUNNING"),
    ):
        definitions = build_definitions(settings)
        for name in SCHEDULES:
            assert definitions.resolve_schedule_def(name).default_status.name == status, name
        sensors = {sensor.name: sensor for sensor in definitions.sensors or []}
        for name in (*LIVE_SENSORS, "alert_on_check_failure"):
            assert sensors[name].default_status.name == status, name
        # The loop's own sensors (retrain, rollback, rollout) stay a person's decision.
        assert sensors["retrain_on_drift"].default_status.name == "STOPPED"


def test_the_ingest_schedule_runs_each_closed_day_its_lag_after_midnight() -> None:
    definitions = build_definitions(_settings(AIOPS_NOW="live", AIOPS_LAG="2h15m"))
    schedule = definitions.resolve_schedule_def(INGEST_SCHEDULE)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 2 * * *", "UTC")
    [request] = _tick(definitions, INGEST_SCHEDULE, datetime(2026, 3, 10, 2, 15, tzinfo=UTC))
    assert (request.job_name, request.partition_key) == (DAILY_JOB, "2026-03-09")
    assert request.run_key == "2026-03-09", "a tick retried by the daemon does not run it twice"


def test_the_hourly_schedule_targets_the_hour_its_lag_closed() -> None:
    definitions = build_definitions(
        _settings(AIOPS_NOW="live", AIOPS_PARTITION="hourly", AIOPS_LAG="1h30m")
    )
    assert definitions.resolve_schedule_def(INGEST_SCHEDULE).cron_schedule == "30 * * * *"
    [request] = _tick(definitions, INGEST_SCHEDULE, datetime(2026, 3, 10, 10, 30, tzinfo=UTC))
    # The 08:00 hour ended at 09:00, 1h30m before the tick; the 09:00 hour is still in its lag.
    assert request.partition_key == "2026-03-10T08"


def test_the_audits_are_scheduled_weekly_and_daily_on_their_own_jobs() -> None:
    definitions = build_definitions(_settings())
    weekly = definitions.resolve_schedule_def(REPRODUCIBILITY_SCHEDULE)
    daily = definitions.resolve_schedule_def(AUDIT_VERIFY_SCHEDULE)
    assert (weekly.job_name, weekly.cron_schedule) == (REPRODUCIBILITY_JOB, "0 4 * * 1")
    assert (daily.job_name, daily.cron_schedule) == (AUDIT_VERIFY_JOB, "0 5 * * *")
    monday = datetime(2026, 3, 9, 4, tzinfo=UTC)
    assert len(_tick(definitions, REPRODUCIBILITY_SCHEDULE, monday)) == 1
    assert len(_tick(definitions, AUDIT_VERIFY_SCHEDULE, monday)) == 1
    job = definitions.resolve_job_def(REPRODUCIBILITY_JOB)
    assert job.asset_layer.selected_asset_keys == set(), "no training run, only the check"
    assert job.asset_layer.asset_graph.asset_check_keys >= {REPRODUCIBLE_CHECK}


def test_every_time_partitioned_asset_has_a_freshness_policy_sized_to_its_period() -> None:
    for partition, period in (("daily", timedelta(days=1)), ("hourly", timedelta(hours=1))):
        graph = build_definitions(_settings(AIOPS_PARTITION=partition)).resolve_asset_graph()
        timed = [
            key
            for key in graph.get_all_asset_keys()
            if isinstance(graph.get(key).partitions_def, dg.TimeWindowPartitionsDefinition)
        ]
        assert set(timed) == {SNAPSHOT_KEY, FEATURES_KEY, SCORES_KEY, MONITORING_REPORT_KEY}
        for key in timed:
            policy: Any = graph.get(key).freshness_policy
            assert policy is not None, key
            fail = policy.fail_window.to_timedelta()
            warn = policy.warn_window.to_timedelta()
            assert period < warn < fail <= 2 * period + timedelta(minutes=30), key


def test_late_data_re_runs_downstream_through_a_stopped_automation_sensor() -> None:
    definitions = build_definitions(_settings())
    graph = definitions.resolve_asset_graph()
    for key in (FEATURES_KEY, SCORES_KEY):
        condition = graph.get(key).automation_condition
        assert condition is not None and condition.get_label() == "late_data", key
        eager, really_new = condition.children
        assert (eager.get_label(), really_new.get_label()) == ("eager", "input_newer_or_requested")
        # Older partitions than the newest re-run too (a re-ingested day), for a week.
        assert "Within 7 days" in eager.children[0].description
    assert graph.get(SNAPSHOT_KEY).automation_condition is None, "ingest is scheduled"
    assert graph.get(CHAMPION_KEY).automation_condition is None
    # The repository's sensors, Dagster's implicit ones included: no running default sensor.
    automation = [
        sensor
        for sensor in definitions.get_repository_def().sensor_defs
        if isinstance(sensor, dg.AutomationConditionSensorDefinition)
    ]
    assert [sensor.name for sensor in automation] == [AUTOMATION_SENSOR]
    assert automation[0].default_status == dg.DefaultSensorStatus.STOPPED
    # Dagster's default interval; AIOPS_AUTOMATION_INTERVAL shortens it (the soak does).
    assert automation[0].minimum_interval_seconds == 30
    quick = build_definitions(_settings(AIOPS_AUTOMATION_INTERVAL="5")).get_repository_def()
    assert quick.get_sensor_def(AUTOMATION_SENSOR).minimum_interval_seconds == 5
    with pytest.raises(ValueError, match="AIOPS_AUTOMATION_INTERVAL must be whole seconds"):
        _settings(AIOPS_AUTOMATION_INTERVAL="soon")


def test_the_live_code_location_loads() -> None:
    for env in ({}, {"AIOPS_NOW": "live"}, {"AIOPS_PARTITION": "hourly", "AIOPS_SCHEDULES": "on"}):
        dg.Definitions.validate_loadable(build_definitions(_settings(**env)))


def test_an_hourly_partition_snapshots_only_its_hour(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    settings = PipelineSettings(home=tmp_path / "aiops", partition="hourly", days=1)
    definitions = build_definitions(settings)
    try:
        materialize_selection(
            definitions,
            instance,
            # Without the checks that read a baseline: none is built for one hour.
            dg.AssetSelection.assets(SNAPSHOT_KEY)
            - dg.AssetSelection.checks(*SNAPSHOT_BASELINE_CHECKS),
            partition_key="2026-01-05T03",
        )
    finally:
        close_ledgers()
    [record] = instance.fetch_materializations(SNAPSHOT_KEY, limit=1).records
    assert record.partition_key == "2026-01-05T03"
    metadata = record.asset_materialization.metadata if record.asset_materialization else {}
    first, last = metadata["first_timestamp"], metadata["last_timestamp"]
    assert isinstance(first, dg.TextMetadataValue) and isinstance(last, dg.TextMetadataValue)
    assert (first.text, last.text) == ("2026-01-05 03:00:00", "2026-01-05 03:55:00")


def test_an_hourly_features_partition_reads_the_day_before_it() -> None:
    """24-hour windows need a day of history: 24 hours back for an hour, as one day for a day."""
    for partition, offset in (("daily", -1), ("hourly", -24)):
        definitions = build_definitions(_settings(AIOPS_PARTITION=partition))
        features = definitions.get_assets_def(FEATURES_KEY)
        mapping = features.get_partition_mapping(SNAPSHOT_KEY)
        assert isinstance(mapping, dg.TimeWindowPartitionMapping)
        assert (mapping.start_offset, mapping.end_offset) == (offset, 0)


def test_late_labels_bring_the_sensor_that_judges_their_estimates_again() -> None:
    def sensors(**env: str) -> set[str]:
        repository = build_definitions(_settings(**env)).get_repository_def()
        return {sensor.name for sensor in repository.sensor_defs}

    assert "rejudge_on_mature_labels" not in sensors()
    assert "rejudge_on_mature_labels" in sensors(AIOPS_LABEL_DELAY="2d")
    assert "redeliver_alerts" in sensors()
