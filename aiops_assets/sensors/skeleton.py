"""What every check-watching sensor shares: its watched keys, description, target job, cursor and
the tags of the runs it requests.

Each factory (retrain, rollback, rollout, alerts) states only its decision; the skeleton checks
what it watches once, at definition time, and hands each tick the evaluations completed since the
last one, with the cursor to store after them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import dagster as dg

from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.sensors.history import CheckCursor, CheckEvaluation, first_tick, new_evaluations

TRIGGER_TAG = "aiops/trigger"
REASON_TAG = "aiops/reason"

JobTarget: TypeAlias = "dg.JobDefinition | dg.UnresolvedAssetJobDefinition | str"


def required_checks(check_keys: Sequence[dg.AssetCheckKey], refusal: str) -> list[dg.AssetCheckKey]:
    """The watched keys, refused at definition time when there are none: a sensor watching
    nothing would tick forever without a word."""
    if not check_keys:
        raise ValueError(refusal)
    return list(check_keys)


def describe_checks(check_keys: Sequence[dg.AssetCheckKey]) -> str:
    return ", ".join(key.to_user_string() for key in check_keys)


@dataclass(frozen=True)
class CheckSensor:
    """A sensor's definition-time facts; :meth:`define` turns a tick function into the sensor."""

    name: str
    description: str
    minimum_interval_seconds: int
    default_status: dg.DefaultSensorStatus
    job: JobTarget | None = None

    def define(self, evaluate: Callable[..., dg.SensorResult]) -> dg.SensorDefinition:
        """``evaluate`` keeps its own signature: Dagster reads the resources it needs from it."""
        # A job defined elsewhere in the code location is named; one defined here is passed.
        job = self.job
        return dg.sensor(
            name=self.name,
            job_name=job if isinstance(job, str) else None,
            job=None if isinstance(job, str) else job,
            minimum_interval_seconds=self.minimum_interval_seconds,
            default_status=self.default_status,
            description=self.description,
        )(evaluate)

    def run_tags(self, reason: str) -> dict[str, str]:
        """Who asked for a run and why: the trigger finds a sensor's last run, the actor and the
        reason reach the audit log."""
        return {
            TRIGGER_TAG: self.name,
            ACTOR_TAG: f"sensor:{self.name}",
            REASON_TAG: reason[:200],
        }


@dataclass
class Tick:
    """The evaluations completed since the last tick, and the cursor to store after them."""

    evaluations: list[CheckEvaluation]
    cursor: CheckCursor

    def skip(self, reason: str) -> dg.SensorResult:
        return dg.SensorResult(skip_reason=reason, cursor=self.cursor.to_json())

    def request(
        self,
        run_requests: Sequence[dg.RunRequest] = (),
        asset_events: Sequence[dg.AssetObservation] = (),
    ) -> dg.SensorResult:
        return dg.SensorResult(
            run_requests=list(run_requests),
            asset_events=list(asset_events),
            cursor=self.cursor.to_json(),
        )


def open_tick(
    context: dg.SensorEvaluationContext, check_keys: Sequence[dg.AssetCheckKey], watching: str
) -> Tick | dg.SensorResult:
    """This tick's new evaluations; on a sensor's first tick, the result that starts it at the
    present instead (results older than the sensor are not its business)."""
    cursor = CheckCursor.from_json(context.cursor)
    if cursor is None:
        return first_tick(context.instance, check_keys, watching)
    evaluations, next_cursor = new_evaluations(context.instance, check_keys, cursor)
    return Tick(evaluations, next_cursor)
