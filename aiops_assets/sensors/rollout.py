"""``staged_rollout``: judge each stage of a model's rollout by its slice's performance check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from aiops_assets.core.ledger import Rollout
from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.core.rollout import RolloutError, advance, running_rollout
from aiops_assets.resources import AlertSinkResource, LedgerResource
from aiops_assets.sensors.history import CheckCursor, CheckEvaluation, first_tick, new_evaluations
from aiops_assets.sensors.retrain import REASON_TAG, TRIGGER_TAG

ROLLOUT_PREFIX = "rollout/"


def build_staged_rollout_sensor(
    *,
    job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition | str,
    performance_checks: Sequence[dg.AssetCheckKey],
    model_name: str = MODEL_NAME,
    champion_asset: str = "champion_model",
    name: str = "staged_rollout",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that moves a staged rollout on, one judged stage at a time.

    A stage waits until a performance check measured its slice: an evaluation carrying this
    rollout's id and this stage's name, with the slice's ``rollout/<metric>`` numbers (the
    scores asset marks which version scored each row, the check measures the slice apart from
    the champion). The plan's check then decides (``core.rollout.advance``): pass opens the next
    stage, fail rolls the slice back and halts, the last pass moves ``champion``. Every verdict is
    an audited ledger row and, so that it shows in the UI next to the model, an observation of
    ``champion_asset`` with the stage, services and metrics. A halt also alerts. When a rollout
    completes, the sensor requests a run of ``job`` (``champion_model`` with ``action: adopt``
    and its score baseline), so the champion asset and the prediction-drift reference follow.

    Args:
        job: The job that re-materializes the champion (and its score baseline), or its name.
        performance_checks: The performance checks that measure rollout slices.
        model_name: The registered model being rolled out.
        champion_asset: The asset observed with each stage, and configured with ``adopt``.
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon evaluates the sensor.
        default_status: STOPPED by default: a team switches it on when it is ready.

    Example:
        >>> build_staged_rollout_sensor(  # doctest: +SKIP
        ...     job="adopt_champion_job",
        ...     performance_checks=[dg.AssetCheckKey(dg.AssetKey("anomaly_scores"), "performance")],
        ... )
    """
    if not performance_checks:
        raise ValueError("staged_rollout needs the performance check that measures the slices")
    check_keys = list(performance_checks)
    watched = ", ".join(key.to_user_string() for key in check_keys)

    @dg.sensor(
        name=name,
        job_name=job if isinstance(job, str) else None,
        job=None if isinstance(job, str) else job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Moves a staged rollout of {model_name} stage by stage on the slice metrics of "
            f"{watched}; halts and rolls the slice back on a failure."
        ),
    )
    def staged_rollout(
        context: dg.SensorEvaluationContext,
        ledger: LedgerResource,
        alert_sink: AlertSinkResource,
    ) -> dg.SensorResult:
        cursor = CheckCursor.from_json(context.cursor)
        if cursor is None:
            return first_tick(context.instance, check_keys, watched)
        evaluations, next_cursor = new_evaluations(context.instance, check_keys, cursor)
        registry = ledger.get_ledger()
        rollout = running_rollout(registry, model_name)
        if rollout is None:
            return dg.SensorResult(
                skip_reason=f"{model_name} has no staged rollout running",
                cursor=next_cursor.to_json(),
            )
        active = rollout.stages[-1]
        measured = [item for item in evaluations if _measures(item, rollout, active.name)]
        if not measured:
            return dg.SensorResult(
                skip_reason=(
                    f"rollout {rollout.rollout_id}: stage {active.name} "
                    f"({', '.join(active.services)}) waits for a performance check of its slice"
                ),
                cursor=next_cursor.to_json(),
            )
        evaluation = measured[-1]
        metrics = _slice_metrics(evaluation.metadata)
        try:
            after = advance(registry, rollout.rollout_id, metrics, actor=f"sensor:{name}")
        except RolloutError as error:
            return dg.SensorResult(skip_reason=str(error), cursor=next_cursor.to_json())
        judged = after.stages[active.index]
        summary = _stage_summary(after, judged.index, evaluation.label)
        events = [
            dg.AssetObservation(
                asset_key=dg.AssetKey(champion_asset),
                metadata=_observation(after, judged.index, metrics, evaluation.label, summary),
            )
        ]
        requests = []
        if after.status == "halted":
            alert_sink.notify(
                context.log,
                kind="rollout",
                severity="ERROR",
                summary=summary,
                asset=champion_asset,
                run_id=evaluation.run_id,
            )
        elif after.status == "completed":
            alert_sink.notify(
                context.log,
                kind="rollout",
                severity="INFO",
                summary=summary,
                asset=champion_asset,
                run_id=evaluation.run_id,
            )
            requests.append(
                dg.RunRequest(
                    run_key=f"{name}:{model_name}:rollout-{after.rollout_id}:adopt",
                    run_config={"ops": {champion_asset: {"config": {"action": "adopt"}}}},
                    tags={
                        TRIGGER_TAG: name,
                        ACTOR_TAG: f"sensor:{name}",
                        REASON_TAG: summary[:200],
                    },
                )
            )
        return dg.SensorResult(
            run_requests=requests, asset_events=events, cursor=next_cursor.to_json()
        )

    return staged_rollout


def _measures(item: CheckEvaluation, rollout: Rollout, stage: str) -> bool:
    metadata = item.metadata
    return (
        int(metadata.get("rollout_id") or 0) == rollout.rollout_id
        and str(metadata.get("rollout_stage", "")) == stage
        and float(metadata.get(f"{ROLLOUT_PREFIX}rows") or 0) > 0
    )


def _slice_metrics(metadata: dict[str, Any]) -> dict[str, float]:
    return {
        key[len(ROLLOUT_PREFIX) :]: float(value)
        for key, value in metadata.items()
        if key.startswith(ROLLOUT_PREFIX) and isinstance(value, int | float)
    }


def _stage_summary(rollout: Rollout, index: int, evaluated: str) -> str:
    stage = rollout.stages[index]
    head = (
        f"rollout {rollout.rollout_id} of {rollout.model_name} v{rollout.to_version}: stage "
        f"{stage.name} ({', '.join(stage.services)}) {stage.status.replace('_', ' ')} on {evaluated}"
    )
    if rollout.status == "halted":
        return (
            f"{head}; halted, {', '.join(stage.services)} back on "
            f"v{rollout.from_version}: {stage.evidence.get('reason', '')}"
        )
    if rollout.status == "completed":
        return f"{head}; completed, v{rollout.to_version} is champion"
    following = rollout.stages[index + 1]
    return f"{head}; next stage {following.name} adds {', '.join(following.services) or 'none'}"


def _observation(
    rollout: Rollout, index: int, metrics: dict[str, float], evaluated: str, summary: str
) -> dict[str, Any]:
    stage = rollout.stages[index]
    rows = [
        f"| {item.index} | {item.name} | {', '.join(item.services) or '-'} | {item.status} |"
        for item in rollout.stages
    ]
    table = "\n".join(["| # | stage | services | status |", "|---|---|---|---|", *rows])
    return {
        "rollout_id": dg.MetadataValue.int(rollout.rollout_id),
        "rollout_version": dg.MetadataValue.int(rollout.to_version),
        "rollout_status": dg.MetadataValue.text(rollout.status),
        "stage": dg.MetadataValue.text(stage.name),
        "stage_status": dg.MetadataValue.text(stage.status),
        "stage_services": dg.MetadataValue.text(", ".join(stage.services)),
        "evaluated": dg.MetadataValue.text(evaluated),
        "summary": dg.MetadataValue.md(f"{summary}\n\n{table}\n"),
        **{
            f"{ROLLOUT_PREFIX}{key}": dg.MetadataValue.float(value)
            for key, value in metrics.items()
        },
    }
