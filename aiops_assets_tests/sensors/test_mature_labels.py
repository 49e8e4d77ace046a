"""rejudge_on_mature_labels: an estimate is judged again, once, when its labels mature.

The same trained champion, incident file and performance check as the delayed-label check tests
(aiops_assets_tests/checks/test_delayed_labels.py), with a clock the test moves forward.
"""

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from aiops_assets.checks.estimate import DelayedLabels
from aiops_assets.checks.performance import build_performance_check
from aiops_assets.core.delayed_labels import read_incident_csv
from aiops_assets.sensors.mature_labels import (
    build_rejudge_job,
    build_rejudge_on_mature_labels_sensor,
)
from aiops_assets_tests.checks.test_delayed_labels import (
    DELAY,
    SCORED_START,
    Pipeline,
    _assets,
    _day_end,
    pipeline,
)

__all__ = ["pipeline"]  # the fixture, used by name

JOB = "rejudge_performance_job"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Location:
    definitions: dg.Definitions
    sensor: dg.SensorDefinition
    scores: dg.AssetsDefinition
    baseline: dg.AssetsDefinition
    check: dg.AssetChecksDefinition
    check_key: dg.AssetCheckKey


def _location(pipeline: Pipeline, clock: Clock) -> Location:
    scores, baseline = _assets(pipeline)
    labels = DelayedLabels(
        delay=DELAY,
        windows=lambda: read_incident_csv(pipeline.incidents_csv),
        now=clock,
        score_baseline=baseline.key,
    )
    check = build_performance_check(scores, labels=labels)
    [check_key] = check.check_keys
    partitions = scores.partitions_def
    assert partitions is not None
    job = build_rejudge_job(JOB, check_key)
    sensor = build_rejudge_on_mature_labels_sensor(
        performance_check=check_key, labels=labels, partitions_def=partitions, job=job
    )
    definitions = dg.Definitions(
        assets=[scores, baseline],
        asset_checks=[check],
        jobs=[job],
        sensors=[sensor],
        resources=pipeline.resources,
    )
    return Location(definitions, sensor, scores, baseline, check, check_key)


def _tick(
    sensor: dg.SensorDefinition, definitions: dg.Definitions, instance: dg.DagsterInstance
) -> tuple[list[dg.RunRequest], str | None]:
    context = dg.build_sensor_context(instance=instance, definitions=definitions)
    data = sensor.evaluate_tick(context)
    return list(data.run_requests or []), data.skip_message


def _label_status(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        str(getattr(evaluation.metadata["label_status"], "value", None))
        for evaluation in result.get_asset_check_evaluations()
    ]


def test_an_estimate_is_rejudged_once_its_labels_mature(
    pipeline: Pipeline, instance: dg.DagsterInstance
) -> None:
    partition = SCORED_START
    clock = Clock(_day_end(partition) + DELAY / 2)
    location = _location(pipeline, clock)
    definitions, sensor = location.definitions, location.sensor
    dg.materialize([location.baseline], instance=instance, resources=pipeline.resources)
    first = dg.materialize(
        [location.scores, location.check],
        instance=instance,
        resources=pipeline.resources,
        partition_key=partition,
    )
    assert _label_status(first) == ["estimate"]

    requests, message = _tick(sensor, definitions, instance)
    assert requests == []
    assert message == "1 estimate(s) waiting for mature labels"

    clock.now = _day_end(partition) + DELAY
    [request] = _tick(sensor, definitions, instance)[0]
    assert request.partition_key == partition
    # Asked again before the run, it asks for the same run: the run key dedupes it.
    [again] = _tick(sensor, definitions, instance)[0]
    assert again.run_key == request.run_key

    assert request.asset_selection == [] and request.asset_check_keys == [location.check_key]
    # The daemon launches it as this subset of the job: the check alone, the partition by tag.
    judge_only = definitions.resolve_job_def(JOB).get_subset(
        asset_selection=set(), asset_check_selection={location.check_key}
    )
    result = judge_only.execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    assert _label_status(result) == ["mature"]
    assert result.get_asset_materialization_events() == []  # judged again, not recomputed
    requests, message = _tick(sensor, definitions, instance)
    assert requests == []
    assert message == "no partition is judged on an estimate"
