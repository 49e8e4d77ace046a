"""``retrain_on_drift``: an ERROR drift result requests one retraining run, and not a storm of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from aiops_assets.sensors.history import CheckEvaluation
from aiops_assets.sensors.skeleton import (
    REASON_TAG,
    TRIGGER_TAG,
    CheckSensor,
    describe_checks,
    open_tick,
    required_checks,
)

__all__ = [
    "REASON_TAG",
    "TRIGGER_TAG",
    "build_retrain_on_drift_sensor",
    "default_retrain_run_config",
]


def default_retrain_run_config(evaluation: CheckEvaluation) -> dict[str, Any]:
    """Train on the world up to the drifted day: never on days after it."""
    if not evaluation.partition:
        return {}
    return {"ops": {"training_set": {"config": {"until": evaluation.partition}}}}


def build_retrain_on_drift_sensor(
    *,
    job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition | str,
    drift_checks: Sequence[dg.AssetCheckKey],
    cooldown_seconds: float = 6 * 3600,
    run_config: Callable[[CheckEvaluation], Mapping[str, Any]] = default_retrain_run_config,
    name: str = "retrain_on_drift",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """A sensor requesting ``job`` when one of ``drift_checks`` fails at ERROR severity.

    Run keys name the drift episode (``core/drift/episodes.py``: consecutive ERROR partitions of
    one check), or the drifted partition for a check without episodes, so one shift retrains at
    most once however long it lasts and however often its check re-runs. The cooldown counts from the last run this sensor requested (found
    by its tag in the instance, so a restarted daemon remembers it); drift inside the cooldown is
    skipped with the reason shown on the tick, because a retraining already under way is using
    data up to that point. WARN drift never retrains: it is an early signal, not a verdict.

    Args:
        job: The retraining job, or its name when the job is defined elsewhere in the location.
        drift_checks: The drift checks to watch (from :func:`build_drift_checks`).
        cooldown_seconds: Minimum time between two retraining runs this sensor requests.
        run_config: The run config of the retraining run, from the ERROR evaluation that caused
            it. The default fits the reference pipeline (``training_set`` trains until the drifted
            day); a host job passes its own, e.g. ``lambda evaluation: {}``.
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon evaluates the sensor.
        default_status: STOPPED by default: a team switches retraining on when it is ready.
        clock: The time source for the cooldown (tests pass a fake clock).

    Example:
        >>> build_retrain_on_drift_sensor(  # doctest: +SKIP
        ...     job=train_job, drift_checks=[dg.AssetCheckKey(dg.AssetKey("features"), "drift")]
        ... )
    """
    check_keys = required_checks(
        drift_checks, "retrain_on_drift needs at least one drift check to watch"
    )
    watched = describe_checks(check_keys)
    sensor = CheckSensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Requests a retraining run when {watched} fails at ERROR severity.",
    )

    def retrain_on_drift(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        tick = open_tick(context, check_keys, watched)
        if isinstance(tick, dg.SensorResult):
            return tick
        errors = [item for item in tick.evaluations if not item.passed and item.severity == "ERROR"]
        if not errors:
            return tick.skip(
                f"no ERROR drift in {len(tick.evaluations)} new evaluation(s) of {watched}"
            )
        cooling = _cooldown(context.instance, name, errors, cooldown_seconds, clock())
        if cooling:
            return tick.skip(cooling)
        newest = errors[-1]
        features = str(newest.metadata.get("drifted", ""))
        reason = f"ERROR drift in {newest.label}" + (f": {features}" if features else "")
        request = dg.RunRequest(
            run_key=f"{name}:{newest.check_key.to_user_string()}:{_drift_key(newest)}",
            run_config=dict(run_config(newest)),
            tags=sensor.run_tags(reason),
        )
        context.log.info(f"requesting retraining: {reason}")
        return tick.request([request])

    return sensor.define(retrain_on_drift)


def _drift_key(evaluation: CheckEvaluation) -> str:
    """The episode the ERROR belongs to; its partition when the check has no episodes."""
    episode = str(evaluation.metadata.get("episode_id") or "").strip()
    return f"episode {episode}" if episode else (evaluation.partition or "-")


def _cooldown(
    instance: dg.DagsterInstance,
    name: str,
    errors: Sequence[CheckEvaluation],
    cooldown_seconds: float,
    now: float,
) -> str:
    """Why this drift waits (a retraining this sensor requested is still recent), or ''."""
    last = _last_requested_run(instance, name)
    if last is None:
        return ""
    elapsed = now - last.create_timestamp.timestamp()
    if elapsed >= cooldown_seconds:
        return ""
    drifted = ", ".join(item.label for item in errors)
    return (
        f"ERROR drift in {drifted}, but run {last.dagster_run.run_id} retrained "
        f"{elapsed:.0f}s ago; cooldown {cooldown_seconds:.0f}s "
        f"({cooldown_seconds - elapsed:.0f}s left)"
    )


def _last_requested_run(instance: dg.DagsterInstance, sensor_name: str) -> Any:
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={TRIGGER_TAG: sensor_name}), limit=1
    )
    return records[0] if records else None
