"""rejudge_on_mature_labels: a partition judged on an estimate is judged again once its labels are.

Until a partition's labels are mature the performance check reports a label-free estimate
(checks/estimate.py); nothing else would look at that partition again, so its real verdict,
the one the ledger and the rollback sensor trust, would wait for a person to press "Execute".
This sensor finds each partition whose latest result is still an estimate and whose labels have
matured by the pipeline's clock, and runs the check again for it. The run key is the estimate's
execution, so a partition is re-judged once per estimate, whatever the daemon's restarts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from aiops_assets.check_history import check_execution_pages, evaluation_of
from aiops_assets.checks.estimate import ESTIMATE, LABEL_STATUS, DelayedLabels
from aiops_assets.sensors.skeleton import CheckSensor, JobTarget

SENSOR_NAME = "rejudge_on_mature_labels"
# Estimates only exist within the label delay of now: the newest executions of this many
# partitions cover weeks of daily or days of hourly partitions.
PARTITIONS_SCANNED = 400


@dataclass(frozen=True)
class PendingEstimate:
    """A partition whose latest result is an estimate, and the execution that reported it."""

    partition: str
    execution_id: int


def build_rejudge_on_mature_labels_sensor(
    *,
    performance_check: dg.AssetCheckKey,
    labels: DelayedLabels,
    partitions_def: dg.PartitionsDefinition,
    job: JobTarget,
    name: str = SENSOR_NAME,
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    partitions_scanned: int = PARTITIONS_SCANNED,
) -> dg.SensorDefinition:
    """A sensor that judges a partition again once the labels of its estimate are mature.

    Args:
        performance_check: The performance check built with ``labels`` (its results carry
            ``label_status: estimate`` until the labels are mature).
        labels: The check's late-label policy: its delay and clock decide maturity.
        partitions_def: The checked asset's time partitions.
        job: A job holding the checked asset, partitioned like it (:func:`build_rejudge_job`);
            each run selects the check alone, so the scores are judged again, not recomputed.
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon evaluates the sensor.
        default_status: STOPPED by default, like the other closed-loop sensors.
        partitions_scanned: How many of the newest partitions' results are looked at.

    Example:
        >>> job = build_rejudge_job("rejudge_job", check_key)  # doctest: +SKIP
        >>> build_rejudge_on_mature_labels_sensor(  # doctest: +SKIP
        ...     performance_check=check_key, labels=labels, partitions_def=daily, job=job
        ... )
    """
    skeleton = CheckSensor(
        name=name,
        description=(
            f"Re-runs {performance_check.to_user_string()} for each partition it judged on a "
            f"label-free estimate, once the labels are mature ({labels.delay} after the "
            "partition ends)."
        ),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        job=job,
    )

    def rejudge_on_mature_labels(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        pending = list(pending_estimates(context.instance, performance_check, partitions_scanned))
        due = [item for item in pending if labels.is_mature(partitions_def, item.partition)]
        if not due:
            waiting = len(pending)
            return dg.SensorResult(
                skip_reason=(
                    f"{waiting} estimate(s) waiting for mature labels"
                    if waiting
                    else "no partition is judged on an estimate"
                )
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{name}:{item.partition}:{item.execution_id}",
                    partition_key=item.partition,
                    asset_selection=[],
                    asset_check_keys=[performance_check],
                    tags=skeleton.run_tags(f"labels of {item.partition} matured"),
                )
                for item in due
            ]
        )

    return skeleton.define(rejudge_on_mature_labels)


def build_rejudge_job(
    name: str, performance_check: dg.AssetCheckKey
) -> dg.UnresolvedAssetJobDefinition:
    """The job :func:`build_rejudge_on_mature_labels_sensor` runs the check from.

    It holds the checked asset, partitioned like it; the sensor's runs select only the check from
    it, so the scores are judged again, not recomputed. (A job of the check alone would be
    simpler, but Dagster 1.13 infers a job's partitions from its assets only.)

    Args:
        name: The job's name.
        performance_check: The performance check to judge again.

    Example:
        >>> build_rejudge_job("rejudge_performance_job", check_key)  # doctest: +SKIP
    """
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(performance_check.asset_key),
        description=(
            f"Judge {performance_check.to_user_string()} again for one partition (its labels "
            "matured since the estimate); runs of the sensor select the check alone."
        ),
    )


def pending_estimates(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, partitions_scanned: int
) -> Iterator[PendingEstimate]:
    """Partitions whose newest completed evaluation is an estimate, newest first."""
    seen: set[str] = set()
    for page in check_execution_pages(instance, check_key):
        for record in page:
            partition = record.partition
            evaluation = evaluation_of(record)
            if partition is None or partition in seen or evaluation is None:
                continue
            seen.add(partition)
            if _label_status(evaluation) == ESTIMATE:
                yield PendingEstimate(partition, int(record.id))
            if len(seen) >= partitions_scanned:
                return


def _label_status(evaluation: Any) -> str | None:
    value = (evaluation.metadata or {}).get(LABEL_STATUS)
    text = getattr(value, "value", value)
    return text if isinstance(text, str) else None


__all__ = [
    "SENSOR_NAME",
    "PendingEstimate",
    "build_rejudge_job",
    "build_rejudge_on_mature_labels_sensor",
    "pending_estimates",
]
