"""``retrain_on_drift`` on a real instance: ERROR drift requests one run; WARN and cooldown skip."""

from __future__ import annotations

from typing import Any

import dagster as dg

from aiops_assets.sensors import build_retrain_on_drift_sensor
from aiops_assets.sensors.history import CheckEvaluation
from aiops_assets.sensors.retrain import TRIGGER_TAG, default_retrain_run_config

CHECK = dg.AssetCheckKey(dg.AssetKey("latency_features"), "drift")


def _run_drift_check(instance: dg.DagsterInstance, **outcome: Any) -> None:
    @dg.asset
    def latency_features() -> int:
        return 1

    @dg.asset_check(asset=latency_features, name="drift")
    def drift() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=outcome.get("passed", False),
            severity=outcome.get("severity", dg.AssetCheckSeverity.ERROR),
            metadata={
                "drifted": dg.MetadataValue.text(outcome.get("drifted", "p95_latency")),
                **(
                    {"episode_id": dg.MetadataValue.text(outcome["episode"])}
                    if "episode" in outcome
                    else {}
                ),
            },
        )

    dg.materialize([latency_features, drift], instance=instance, tags=outcome.get("tags"))


def _tick(
    instance: dg.DagsterInstance, cursor: str | None, now: float = 0.0, cooldown: float = 3600
) -> tuple[str, list[dg.RunRequest], str | None]:
    sensor = build_retrain_on_drift_sensor(
        job="train_job", drift_checks=[CHECK], cooldown_seconds=cooldown, clock=lambda: now
    )
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert data.cursor is not None
    return data.cursor, list(data.run_requests or []), data.skip_message


def test_error_drift_requests_a_retraining_with_a_deduplicating_run_key(
    instance: dg.DagsterInstance,
) -> None:
    _run_drift_check(instance)  # before the sensor existed: not its business
    cursor, requests, message = _tick(instance, None)
    assert requests == [] and message is not None and message.startswith("started")

    _run_drift_check(instance, severity=dg.AssetCheckSeverity.WARN)
    cursor, requests, message = _tick(instance, cursor)
    assert requests == [] and message is not None and "no ERROR drift" in message

    _run_drift_check(instance, drifted="p95_latency, error_rate")
    cursor, [request], _ = _tick(instance, cursor)
    assert request.run_key == "retrain_on_drift:latency_features:drift:-"
    assert request.tags[TRIGGER_TAG] == "retrain_on_drift"
    assert request.tags["aiops/actor"] == "sensor:retrain_on_drift"
    assert request.tags["aiops/reason"] == (
        "ERROR drift in latency_features:drift: p95_latency, error_rate"
    )

    # Nothing new: nothing requested again.
    cursor, requests, _ = _tick(instance, cursor)
    assert requests == []


def test_the_cooldown_skips_drift_right_after_a_retraining_and_says_so(
    instance: dg.DagsterInstance,
) -> None:
    cursor, _, _ = _tick(instance, None)
    # A retraining this sensor requested earlier, found by its tag in the instance.
    _run_drift_check(instance, passed=True, tags={TRIGGER_TAG: "retrain_on_drift"})
    started = max(
        record.create_timestamp.timestamp()
        for record in instance.get_run_records(
            filters=dg.RunsFilter(tags={TRIGGER_TAG: "retrain_on_drift"})
        )
    )
    _run_drift_check(instance)
    cursor, requests, message = _tick(instance, cursor, now=started + 600, cooldown=3600)
    assert requests == []
    assert message is not None and "cooldown 3600s (3000s left)" in message

    _run_drift_check(instance)
    cursor, requests, _ = _tick(instance, cursor, now=started + 4000, cooldown=3600)
    assert len(requests) == 1


def test_a_retraining_uses_no_day_after_the_drifted_one() -> None:
    evaluation = CheckEvaluation(
        id=1,
        check_key=CHECK,
        partition="2026-01-09",
        run_id="r",
        passed=False,
        severity="ERROR",
        metadata={},
        timestamp=0.0,
    )
    assert default_retrain_run_config(evaluation) == {
        "ops": {"training_set": {"config": {"until": "2026-01-09"}}}
    }


def test_one_drift_episode_retrains_once_however_long_it_lasts(
    instance: dg.DagsterInstance,
) -> None:
    cursor, _, _ = _tick(instance, None)
    _run_drift_check(instance, episode="2026-01-08")
    cursor, [first], _ = _tick(instance, cursor, cooldown=0)
    _run_drift_check(instance, episode="2026-01-08")  # the shift goes on the next day
    cursor, [again], _ = _tick(instance, cursor, cooldown=0)
    # The same run key: the daemon launches it once.
    assert (
        again.run_key
        == first.run_key
        == "retrain_on_drift:latency_features:drift:episode 2026-01-08"
    )
    _run_drift_check(instance, episode="2026-01-20")  # a new shift, later
    _, [later], _ = _tick(instance, cursor, cooldown=0)
    assert later.run_key != first.run_key
