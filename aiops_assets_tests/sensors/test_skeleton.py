"""The sensor skeleton every closed-loop sensor is built on: keys, job, first tick, run tags."""

from __future__ import annotations

import dagster as dg
import pytest

from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.sensors import (
    build_retrain_on_drift_sensor,
    build_rollback_on_regression_sensor,
    build_staged_rollout_sensor,
)
from aiops_assets.sensors.history import CheckCursor
from aiops_assets.sensors.skeleton import (
    REASON_TAG,
    TRIGGER_TAG,
    CheckSensor,
    Tick,
    open_tick,
    required_checks,
)

CHECK = dg.AssetCheckKey(dg.AssetKey("scores"), "performance")


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_retrain_on_drift_sensor(job="train", drift_checks=[]),
        lambda: build_rollback_on_regression_sensor(job="rollback", performance_checks=[]),
        lambda: build_staged_rollout_sensor(job="adopt", performance_checks=[]),
    ],
)
def test_a_sensor_watching_nothing_is_refused_when_it_is_defined(build: object) -> None:
    with pytest.raises(ValueError, match="needs"):
        build()  # type: ignore[operator]


def test_required_checks_keeps_the_keys_in_order() -> None:
    other = dg.AssetCheckKey(dg.AssetKey("features"), "drift")
    assert required_checks((CHECK, other), "unused") == [CHECK, other]


def test_a_job_is_named_or_passed() -> None:
    @dg.asset
    def scores() -> None:
        return None

    job = dg.define_asset_job("score_job", selection=[scores])

    def tick(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return dg.SensorResult(skip_reason="never")

    common = {
        "minimum_interval_seconds": 30,
        "default_status": dg.DefaultSensorStatus.STOPPED,
        "description": "watches",
    }
    named = CheckSensor(name="named", job="elsewhere_job", **common).define(tick)  # type: ignore[arg-type]
    passed = CheckSensor(name="passed", job=job, **common).define(tick)  # type: ignore[arg-type]
    without = CheckSensor(name="without", **common).define(tick)  # type: ignore[arg-type]

    assert named.job_name == "elsewhere_job"
    assert passed.job_name == "score_job"
    assert not without.has_jobs
    assert named.description == "watches"
    assert named.default_status == dg.DefaultSensorStatus.STOPPED


def test_run_tags_name_the_trigger_the_actor_and_a_bounded_reason() -> None:
    sensor = CheckSensor(
        name="retrain_on_drift",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="",
    )

    tags = sensor.run_tags("x" * 500)

    assert tags[TRIGGER_TAG] == "retrain_on_drift"
    assert tags[ACTOR_TAG] == "sensor:retrain_on_drift"
    assert tags[REASON_TAG] == "x" * 200


def test_the_first_tick_starts_at_the_present_and_later_ticks_read_after_it() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        first = open_tick(dg.build_sensor_context(instance=instance), [CHECK], "the check")
        assert isinstance(first, dg.SensorResult)
        assert first.skip_reason is not None
        assert "started: watching the check" in str(first.skip_reason.skip_message)

        later = open_tick(
            dg.build_sensor_context(instance=instance, cursor=first.cursor), [CHECK], "the check"
        )

    assert isinstance(later, Tick)
    assert later.evaluations == []
    result = later.skip("nothing new")
    assert CheckCursor.from_json(result.cursor) == CheckCursor.from_json(first.cursor)
