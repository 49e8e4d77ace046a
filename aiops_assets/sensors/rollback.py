"""``rollback_on_regression``: the champion failed its performance check; restore the last good one."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from aiops_assets.checks.estimate import ESTIMATE, LABEL_STATUS
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.resources import LedgerResource
from aiops_assets.sensors.skeleton import CheckSensor, describe_checks, open_tick, required_checks


def build_rollback_on_regression_sensor(
    *,
    job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition | str,
    performance_checks: Sequence[dg.AssetCheckKey],
    model_name: str = MODEL_NAME,
    champion_asset: str = "champion_model",
    name: str = "rollback_on_regression",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    act_on_estimates: bool = False,
) -> dg.SensorDefinition:
    """A sensor requesting a rollback run of ``job`` when the champion fails a performance check.

    Only a failure of the version that is champion *now* counts: results of a version already
    replaced, or of an earlier partition scored by another model, must not roll back a model that
    never failed. The run key names the failing version, so one regression causes one rollback.
    The rollback itself (the ``champion_model`` asset with ``action: rollback``) picks the most
    recent earlier champion whose checks passed, records why, alerts, and deletes nothing.
    The sensor reads the champion from the ``ledger`` resource (:class:`LedgerResource`).

    Args:
        job: The rollback job, or its name when the job is defined elsewhere in the location.
        performance_checks: The performance checks to watch.
        model_name: The registered model whose champion is rolled back.
        champion_asset: The asset whose config takes ``action: rollback`` and ``reason``.
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon evaluates the sensor.
        default_status: STOPPED by default: a team switches rollback on when it is ready.
        act_on_estimates: Whether a failed label-free estimate (``label_status: estimate``, a
            partition whose labels are not mature yet) rolls back too. Off by default: an
            estimate is a guess from calibrated scores, and a rollback on a guess is for teams
            that would rather page less now than be sure later.

    Example:
        >>> build_rollback_on_regression_sensor(  # doctest: +SKIP
        ...     job=rollback_job,
        ...     performance_checks=[dg.AssetCheckKey(dg.AssetKey("anomaly_scores"), "performance")],
        ... )
    """
    check_keys = required_checks(
        performance_checks,
        "rollback_on_regression needs at least one performance check to watch",
    )
    watched = describe_checks(check_keys)
    sensor = CheckSensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Rolls {model_name}'s champion back when {watched} fails.",
    )

    def rollback_on_regression(
        context: dg.SensorEvaluationContext, ledger: LedgerResource
    ) -> dg.SensorResult:
        tick = open_tick(context, check_keys, watched)
        if isinstance(tick, dg.SensorResult):
            return tick
        failures = [item for item in tick.evaluations if not item.passed]
        champion = ledger.get_ledger().get_alias(model_name, CHAMPION)
        estimates = [item for item in failures if _is_estimate(item.metadata)]
        if not act_on_estimates:
            failures = [item for item in failures if not _is_estimate(item.metadata)]
        if not failures:
            ignored = (
                f"; {len(estimates)} failed estimate(s) ignored (labels not mature)"
                if estimates
                else ""
            )
            return tick.skip(
                f"no failed performance check in {len(tick.evaluations)} new evaluation(s)"
                + ignored
            )
        if champion is None:
            return tick.skip(f"{model_name} has no champion")
        current = [
            item for item in failures if item.metadata.get("model_sha256") == champion.sha256
        ]
        if not current:
            return tick.skip(
                f"{len(failures)} failed performance check(s), none of the current champion "
                f"v{champion.version}"
            )
        failed = current[-1]
        reason = f"{failed.label} failed for v{champion.version}: {failed.summary()}"
        request = dg.RunRequest(
            run_key=f"{name}:{model_name}:v{champion.version}",
            run_config={
                "ops": {champion_asset: {"config": {"action": "rollback", "reason": reason}}}
            },
            tags=sensor.run_tags(reason),
        )
        context.log.info(f"requesting rollback: {reason}")
        return tick.request([request])

    return sensor.define(rollback_on_regression)


def _is_estimate(metadata: dict[str, object]) -> bool:
    """A label-free estimate's result (``checks/estimate.py``), not a judgement on labels."""
    return metadata.get(LABEL_STATUS) == ESTIMATE
