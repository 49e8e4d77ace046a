"""What runs the reference pipeline without a person: schedules, automation and freshness.

Applied once, here, to the assets that ``definitions.py`` assembles (the open-platform way:
policies in one place, assets free of them):

- ``ingest_and_score_schedule`` runs the daily (or hourly) job for each partition as it closes,
  ``AIOPS_LAG`` after its window ended.
- ``features`` and ``anomaly_scores`` re-materialize on their own when their upstream partition
  gets a new version (late data, a re-ingest), through the automation sensor.
- ``reproducibility_audit_schedule`` re-trains the champion from its capsule once a week;
  ``audit_verify_schedule`` verifies the audit chain every day.
- Every time-partitioned asset carries a ``dg.FreshnessPolicy`` sized to its period and lag;
  ``alert_on_stale_asset`` pages when one is broken.

All of it is stopped by default; ``AIOPS_SCHEDULES=on`` starts it (and the alert sensors) with
the code location, or each can be switched on in the UI (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from aiops_assets.audits import AUDIT_VERIFY_JOB
from aiops_assets.keys import (
    CHAMPION_KEY,
    FEATURES_KEY,
    MONITORING_REPORT_KEY,
    SCORES_KEY,
    SNAPSHOT_KEY,
)
from aiops_assets.reference import clock as pipeline_clock
from aiops_assets.reference.settings import PipelineSettings

INGEST_SCHEDULE = "ingest_and_score_schedule"
REPRODUCIBILITY_JOB = "reproducibility_audit_job"
REPRODUCIBILITY_SCHEDULE = "reproducibility_audit_schedule"
AUDIT_VERIFY_SCHEDULE = "audit_verify_schedule"
AUTOMATION_SENSOR = "aiops_automation_sensor"
# Monday 04:00 UTC: after the weekend's partitions closed, before the working week.
REPRODUCIBILITY_CRON = "0 4 * * 1"
# 05:00 UTC: after the night's ingest has written its entries.
AUDIT_VERIFY_CRON = "0 5 * * *"
TIME_PARTITIONED = (SNAPSHOT_KEY, FEATURES_KEY, SCORES_KEY)
# How far back a late partition still re-runs its downstream by itself; older ones are a
# person's decision (`aiops backfill`, the UI's backfill).
LATE_DATA_LOOKBACK = {"daily": timedelta(days=7), "hourly": timedelta(days=2)}


def schedule_status(settings: PipelineSettings) -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING if settings.schedules else dg.DefaultScheduleStatus.STOPPED
    )


def sensor_status(settings: PipelineSettings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.schedules else dg.DefaultSensorStatus.STOPPED


def freshness_policy(settings: PipelineSettings) -> dg.FreshnessPolicy:
    """Warn when a period (and the lag, and a twelfth of a period of slack) passed without a new
    partition; fail after two periods: one missed run is a warning, two are an incident."""
    period = pipeline_clock.PERIODS[settings.partition]
    return dg.FreshnessPolicy.time_window(
        warn_window=period + settings.lag + period / 12, fail_window=2 * period + settings.lag
    )


def late_data_condition(settings: PipelineSettings) -> dg.AutomationCondition:
    """Eager (run when a dependency got a new version and none is missing or running), for every
    partition in the lookback, not only the newest: a re-ingested day re-runs its downstream.

    A new champion is not "new data": it scores from the next partition on, and re-scoring
    history stays a person's decision, so champion updates are ignored.
    """
    lookback = LATE_DATA_LOOKBACK[settings.partition]
    return (
        dg.AutomationCondition.eager()
        .replace("in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback))
        .replace(
            "any_deps_updated",
            dg.AutomationCondition.any_deps_updated().ignore(
                dg.AssetSelection.assets(CHAMPION_KEY)
            ),
        )
    )


def apply_policies(
    assets: Sequence[dg.AssetsDefinition], settings: PipelineSettings
) -> list[dg.AssetsDefinition]:
    """The assets with a freshness policy on each time-partitioned one and the late-data
    automation on those downstream of the snapshot."""
    policy = freshness_policy(settings)
    automation = late_data_condition(settings)

    def with_policies(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in TIME_PARTITIONED:
            return spec
        condition = automation if spec.key != SNAPSHOT_KEY else spec.automation_condition
        return spec.replace_attributes(freshness_policy=policy, automation_condition=condition)

    return [definition.map_asset_specs(with_policies) for definition in assets]


def build_schedules(
    settings: PipelineSettings, daily_job: dg.UnresolvedAssetJobDefinition
) -> list[dg.ScheduleDefinition | dg.UnresolvedPartitionedAssetScheduleDefinition]:
    hour, minute = pipeline_clock.schedule_offset(settings.lag, settings.partition)
    status = schedule_status(settings)
    return [
        dg.build_schedule_from_partitioned_job(
            daily_job,
            name=INGEST_SCHEDULE,
            hour_of_day=hour,
            minute_of_hour=minute,
            default_status=status,
            description=(
                f"Ingest and score each {settings.partition} partition "
                f"{pipeline_clock.format_duration(settings.lag)} after its window closes."
            ),
        ),
        dg.ScheduleDefinition(
            name=REPRODUCIBILITY_SCHEDULE,
            job_name=REPRODUCIBILITY_JOB,
            cron_schedule=REPRODUCIBILITY_CRON,
            execution_timezone="UTC",
            default_status=status,
            description="Weekly: re-train the champion from its capsule and compare the hashes.",
        ),
        dg.ScheduleDefinition(
            name=AUDIT_VERIFY_SCHEDULE,
            job_name=AUDIT_VERIFY_JOB,
            cron_schedule=AUDIT_VERIFY_CRON,
            execution_timezone="UTC",
            default_status=status,
            description="Daily: verify the audit chain; alerts and fails if it is broken.",
        ),
    ]


def build_automation_sensor(settings: PipelineSettings) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the late-data conditions; stopped like the schedules (Dagster's
    implicit one would start running)."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(FEATURES_KEY, SCORES_KEY, MONITORING_REPORT_KEY),
        default_status=sensor_status(settings),
        description=(
            "Re-runs features and anomaly_scores for partitions whose upstream changed, and "
            "each day's monitoring_report once its scores' run (with their checks) ended."
        ),
    )


def reproducibility_job(check: dg.AssetCheckKey) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REPRODUCIBILITY_JOB,
        selection=dg.AssetSelection.checks(check),
        description=(
            "Re-run the champion's training from its capsule in a fresh process (the "
            "reproducible check); a failure alerts through alert_on_check_failure."
        ),
    )


__all__ = [
    "apply_policies",
    "build_automation_sensor",
    "build_schedules",
    "freshness_policy",
    "late_data_condition",
    "reproducibility_job",
]
