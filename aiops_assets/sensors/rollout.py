"""``staged_rollout``: judge each stage of a model's rollout by its slice's performance check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from aiops_assets.core.ledger import Ledger, Rollout
from aiops_assets.core.markdown import md_row, md_text
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.core.rollout import RolloutError, advance, running_rollout
from aiops_assets.resources import AlertSinkResource, LedgerResource
from aiops_assets.sensors.history import CheckEvaluation
from aiops_assets.sensors.skeleton import (
    CheckSensor,
    Tick,
    describe_checks,
    open_tick,
    required_checks,
)

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
    check_keys = required_checks(
        performance_checks, "staged_rollout needs the performance check that measures the slices"
    )
    watched = describe_checks(check_keys)
    judge = _StageJudge(
        CheckSensor(
            name=name,
            job=job,
            minimum_interval_seconds=minimum_interval_seconds,
            default_status=default_status,
            description=(
                f"Moves a staged rollout of {model_name} stage by stage on the slice metrics of "
                f"{watched}; halts and rolls the slice back on a failure."
            ),
        ),
        model_name=model_name,
        champion_asset=champion_asset,
    )

    def staged_rollout(
        context: dg.SensorEvaluationContext,
        ledger: LedgerResource,
        alert_sink: AlertSinkResource,
    ) -> dg.SensorResult:
        tick = open_tick(context, check_keys, watched)
        if isinstance(tick, dg.SensorResult):
            return tick
        return judge.evaluate(context, tick, ledger.get_ledger(), alert_sink)

    return judge.sensor.define(staged_rollout)


@dataclass(frozen=True)
class _StageJudge:
    """One tick of a staged rollout: find the active stage's measurement, judge it, report it."""

    sensor: CheckSensor
    model_name: str
    champion_asset: str

    def evaluate(
        self,
        context: dg.SensorEvaluationContext,
        tick: Tick,
        registry: Ledger,
        alert_sink: AlertSinkResource,
    ) -> dg.SensorResult:
        rollout = running_rollout(registry, self.model_name)
        if rollout is None:
            return tick.skip(f"{self.model_name} has no staged rollout running")
        active = rollout.stages[-1]
        measured = [item for item in tick.evaluations if _measures(item, rollout, active.name)]
        if not measured:
            return tick.skip(
                f"rollout {rollout.rollout_id}: stage {active.name} "
                f"({', '.join(active.services)}) waits for a performance check of its slice"
            )
        # Each measured day adds its labelled anomalies to a stage that waits for enough.
        for evaluation in measured:
            metrics = _slice_metrics(evaluation.metadata)
            try:
                after = advance(
                    registry,
                    rollout.rollout_id,
                    metrics,
                    actor=f"sensor:{self.sensor.name}",
                    evaluated=evaluation.label,
                )
            except RolloutError as error:
                return tick.skip(str(error))
            if after.stages[active.index].status != "active":
                break
        summary = _stage_summary(after, active.index, evaluation.label)
        observation = dg.AssetObservation(
            asset_key=dg.AssetKey(self.champion_asset),
            metadata=_observation(after, active.index, metrics, evaluation.label, summary),
        )
        self._alert(context, alert_sink, after, summary, evaluation.run_id)
        requests = [self._adopt(after, summary)] if after.status == "completed" else []
        return tick.request(requests, [observation])

    def _alert(
        self,
        context: dg.SensorEvaluationContext,
        alert_sink: AlertSinkResource,
        after: Rollout,
        summary: str,
        run_id: str,
    ) -> None:
        """A halt pages (ERROR); a completed rollout informs; a stage that passed is quiet."""
        severity = {"halted": "ERROR", "completed": "INFO"}.get(after.status)
        if severity is None:
            return
        alert_sink.notify(
            context.log,
            kind="rollout",
            severity=severity,
            summary=summary,
            asset=self.champion_asset,
            run_id=run_id,
        )

    def _adopt(self, after: Rollout, summary: str) -> dg.RunRequest:
        """The run that materializes the new champion (and its score baseline)."""
        return dg.RunRequest(
            run_key=f"{self.sensor.name}:{self.model_name}:rollout-{after.rollout_id}:adopt",
            run_config={"ops": {self.champion_asset: {"config": {"action": "adopt"}}}},
            tags=self.sensor.run_tags(summary),
        )


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
    if stage.status == "active":
        return f"{head}; {stage.evidence.get('reason', 'waiting')}"
    following = rollout.stages[index + 1]
    return f"{head}; next stage {following.name} adds {', '.join(following.services) or 'none'}"


def _observation(
    rollout: Rollout, index: int, metrics: dict[str, float], evaluated: str, summary: str
) -> dict[str, Any]:
    stage = rollout.stages[index]
    # Stage names, services and the summary's reason are configuration and data: escaped, a
    # service named "a|b" stays in its cell.
    rows = [
        md_row([item.index, item.name, ", ".join(item.services) or "-", item.status])
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
        "summary": dg.MetadataValue.md(f"{md_text(summary)}\n\n{table}\n"),
        **{
            f"{ROLLOUT_PREFIX}{key}": dg.MetadataValue.float(value)
            for key, value in metrics.items()
        },
    }
