"""``rollback_on_regression``: the champion failed its performance check; restore the last good one."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.resources import LedgerResource
from aiops_assets.sensors.history import CheckCursor, first_tick, new_evaluations
from aiops_assets.sensors.retrain import REASON_TAG, TRIGGER_TAG


def build_rollback_on_regression_sensor(
    *,
    job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition | str,
    performance_checks: Sequence[dg.AssetCheckKey],
    model_name: str = MODEL_NAME,
    champion_asset: str = "champion_model",
    name: str = "rollback_on_regression",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
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

    Example:
        >>> build_rollback_on_regression_sensor(  # doctest: +SKIP
        ...     job=rollback_job,
        ...     performance_checks=[dg.AssetCheckKey(dg.AssetKey("anomaly_scores"), "performance")],
        ... )
    """
    if not performance_checks:
        raise ValueError("rollback_on_regression needs at least one performance check to watch")
    check_keys = list(performance_checks)
    watched = ", ".join(key.to_user_string() for key in check_keys)

    @dg.sensor(
        name=name,
        job_name=job if isinstance(job, str) else None,
        job=None if isinstance(job, str) else job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Rolls {model_name}'s champion back when {watched} fails.",
    )
    def rollback_on_regression(
        context: dg.SensorEvaluationContext, ledger: LedgerResource
    ) -> dg.SensorResult:
        cursor = CheckCursor.from_json(context.cursor)
        if cursor is None:
            return first_tick(context.instance, check_keys, watched)
        evaluations, next_cursor = new_evaluations(context.instance, check_keys, cursor)
        failures = [item for item in evaluations if not item.passed]
        champion = ledger.get_ledger().get_alias(model_name, CHAMPION)
        if not failures or champion is None:
            return dg.SensorResult(
                skip_reason=(
                    f"no failed performance check in {len(evaluations)} new evaluation(s)"
                    if not failures
                    else f"{model_name} has no champion"
                ),
                cursor=next_cursor.to_json(),
            )
        current = [
            item for item in failures if item.metadata.get("model_sha256") == champion.sha256
        ]
        if not current:
            return dg.SensorResult(
                skip_reason=(
                    f"{len(failures)} failed performance check(s), none of the current champion "
                    f"v{champion.version}"
                ),
                cursor=next_cursor.to_json(),
            )
        failed = current[-1]
        reason = f"{failed.label} failed for v{champion.version}: {failed.summary()}"
        request = dg.RunRequest(
            run_key=f"{name}:{model_name}:v{champion.version}",
            run_config={
                "ops": {champion_asset: {"config": {"action": "rollback", "reason": reason}}}
            },
            tags={
                TRIGGER_TAG: name,
                ACTOR_TAG: f"sensor:{name}",
                REASON_TAG: reason[:200],
            },
        )
        context.log.info(f"requesting rollback: {reason}")
        return dg.SensorResult(run_requests=[request], cursor=next_cursor.to_json())

    return rollback_on_regression
