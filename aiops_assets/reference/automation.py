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
from typing import Any

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


class InputNewerCondition(dg.AutomationCondition[dg.AssetKey]):
    """True for the partitions that were never materialized, or whose dependency partitions
    (the champion aside) hold a materialization newer than their own: their input really changed.

    Read from the event log on every evaluation, not from the sensor's cursor, so it cannot be
    fooled by a tick's window. Eager's "a dependency was updated" is an edge the cursor latches
    until the partition's own update is seen; the scheduled job's runs carry no asset selection,
    so Dagster's ``executed_with_root_target`` never tells their snapshot (or features) update
    apart from late data, and each scheduled run latches its own downstream partitions. If no
    tick then sees the partition's own materialization (one racing the run's writes, a daemon
    killed mid-tick), the latch outlives the run and the sensor re-runs an untouched day.
    """

    @property
    def name(self) -> str:
        return "input_newer"

    @property
    def description(self) -> str:
        return "Missing, or a dependency partition was materialized after this one"

    def evaluate(
        self, context: dg.AutomationContext[dg.AssetKey]
    ) -> dg.AutomationResult[dg.AssetKey]:
        candidates = context.candidate_subset
        if candidates.is_empty or context.partitions_def is None:
            return dg.AutomationResult(context=context, true_subset=candidates)
        view = context.asset_graph_view
        keys = set(candidates.expensively_compute_partition_keys())
        built = _latest_ids(view.instance, context.key, keys)
        parents = context.asset_graph.get(context.key).parent_keys - {CHAMPION_KEY}
        newer = {
            key
            for key in keys
            if key not in built
            or any(_newest_input(view, context, parent, key) > built[key] for parent in parents)
        }
        return dg.AutomationResult(
            context=context, true_subset=candidates.compute_intersection_with_partition_keys(newer)
        )


def _latest_ids(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: set[str] | None
) -> dict[str, int]:
    return dict(
        instance.get_latest_storage_id_by_partition(
            key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=partitions
        )
    )


def _newest_input(
    view: Any, context: dg.AutomationContext[dg.AssetKey], parent: dg.AssetKey, partition: str
) -> int:
    """The newest materialization's storage id among the ``parent`` partitions ``partition``
    reads (-1 without any)."""
    assert context.partitions_def is not None
    one = view.get_subset_from_partition_keys(context.key, context.partitions_def, {partition})
    mapped = one.compute_parent_subset(parent)
    if mapped.is_empty:
        return -1
    partitions = set(mapped.expensively_compute_partition_keys()) if mapped.is_partitioned else None
    return max(_latest_ids(view.instance, parent, partitions).values(), default=-1)


def late_data_condition(settings: PipelineSettings) -> dg.AutomationCondition:
    """Eager (run when a dependency got a new version and none is missing or running), for every
    partition in the lookback, not only the newest: a re-ingested day re-runs its downstream;
    and only if an input is really newer than the partition (``InputNewerCondition``) or is
    requested in the same tick, so a partition its scheduled run already built is never re-run.

    A new champion is not "new data": it scores from the next partition on, and re-scoring
    history stays a person's decision, so champion updates are ignored.
    """
    lookback = LATE_DATA_LOOKBACK[settings.partition]
    eager = (
        dg.AutomationCondition.eager()
        .replace("in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback))
        .replace(
            "any_deps_updated",
            dg.AutomationCondition.any_deps_updated().ignore(
                dg.AssetSelection.assets(CHAMPION_KEY)
            ),
        )
    )
    really_new = InputNewerCondition() | dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.will_be_requested()
    ).ignore(dg.AssetSelection.assets(CHAMPION_KEY))
    return (eager & really_new.with_label("input_newer_or_requested")).with_label("late_data")


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
    implicit one would start running). Evaluated in the code server, where
    ``InputNewerCondition``'s Python lives (the daemon only runs Dagster's own conditions)."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(FEATURES_KEY, SCORES_KEY, MONITORING_REPORT_KEY),
        default_status=sensor_status(settings),
        use_user_code_server=True,
        minimum_interval_seconds=settings.automation_interval,
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
