"""Reading asset-check results incrementally, for cursor-based sensors.

Dagster stores one row per check execution and updates it in place when the execution completes
(PLANNED, then SUCCEEDED or FAILED), so "every row after id N" is not a safe cursor: a row planned
before a tick and completed after it would be skipped forever. The cursor here is a low-water
mark below which everything is final, plus the ids above it already handled; a planned row holds
the mark back only while its run is still going (a finished run's planned row was skipped, e.g. by
a failed blocking check upstream, and never completes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from aiops_assets.check_history import check_execution_pages, evaluation_of, latest_execution_id


@dataclass(frozen=True)
class CheckEvaluation:
    """One completed check execution, with its metadata as plain values."""

    id: int
    check_key: dg.AssetCheckKey
    partition: str | None
    run_id: str
    passed: bool
    severity: str
    metadata: dict[str, Any]
    timestamp: float

    @property
    def label(self) -> str:
        name = self.check_key.to_user_string()
        return f"{name}[{self.partition}]" if self.partition else name

    def summary(self) -> str:
        """The first line of the check's own summary, else its verdict, else pass/fail."""
        for name in ("summary", "verdict", "description"):
            text = str(self.metadata.get(name, "")).strip()
            if text:
                first = text.splitlines()[0].replace("**", "").strip("#* ").strip()
                if first:
                    return first
        return "passed" if self.passed else "failed"


@dataclass
class CheckCursor:
    """Where a sensor is in the check history; serialized as the sensor's cursor."""

    after: int = 0
    seen: set[int] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"after": self.after, "seen": sorted(self.seen), "extra": self.extra}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str | None) -> CheckCursor | None:
        """None for a sensor that never ticked (it starts at the present, see ``start_cursor``)."""
        if not text:
            return None
        data = json.loads(text)
        return cls(
            after=int(data.get("after", 0)),
            seen={int(item) for item in data.get("seen", [])},
            extra=dict(data.get("extra", {})),
        )


def start_cursor(
    instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]
) -> CheckCursor:
    """A new sensor watches what happens from now on: alerting on, or retraining for, results
    older than the sensor itself would flood a team the moment they switch it on."""
    latest = max((latest_execution_id(instance, key) for key in check_keys), default=0)
    return CheckCursor(after=latest)


def first_tick(
    instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey], watching: str
) -> dg.SensorResult:
    """A sensor's first tick: store the present as its cursor and say what it watches."""
    start = start_cursor(instance, check_keys)
    return dg.SensorResult(
        skip_reason=f"started: watching {watching} after evaluation {start.after}",
        cursor=start.to_json(),
    )


def new_evaluations(
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    cursor: CheckCursor,
) -> tuple[list[CheckEvaluation], CheckCursor]:
    """Completed evaluations not handled yet, oldest first, and the cursor to store after them."""
    evaluations: list[CheckEvaluation] = []
    outstanding: list[int] = []
    highest = cursor.after
    run_finished: dict[str, bool] = {}
    for key in check_keys:
        for records in check_execution_pages(instance, key):
            fresh = [record for record in records if record.id > cursor.after]
            for record in fresh:
                highest = max(highest, record.id)
                if record.id in cursor.seen:
                    continue
                if record.status.value == "PLANNED":
                    if record.run_id not in run_finished:
                        run = instance.get_run_by_id(record.run_id)
                        run_finished[record.run_id] = run is None or run.is_finished
                    if not run_finished[record.run_id]:
                        outstanding.append(record.id)
                    continue
                evaluation = _evaluation(record)
                if evaluation is not None:
                    evaluations.append(evaluation)
            if len(fresh) < len(records):
                break  # newest first: the rest of the history is older than the cursor
    evaluations.sort(key=lambda item: item.id)
    after = min(outstanding) - 1 if outstanding else highest
    handled = cursor.seen | {item.id for item in evaluations}
    # Ids above the mark that are final stay in `seen` until the mark passes them.
    seen = {item for item in handled if item > after}
    return evaluations, CheckCursor(after=after, seen=seen, extra=dict(cursor.extra))


def _evaluation(record: Any) -> CheckEvaluation | None:
    data = evaluation_of(record)
    if data is None:
        return None
    return CheckEvaluation(
        id=record.id,
        check_key=record.key,
        partition=record.partition,
        run_id=record.run_id,
        passed=bool(data.passed),
        severity=str(getattr(data.severity, "value", data.severity)),
        metadata={name: getattr(value, "value", value) for name, value in data.metadata.items()},
        timestamp=float(record.create_timestamp),
    )


def all_check_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetCheckKey]:
    """Every check of the code location the sensor runs in."""
    graph = context.repository_def.asset_graph if context.repository_def else None
    if graph is None:
        return []
    return sorted(graph.asset_check_keys, key=lambda key: key.to_user_string())
