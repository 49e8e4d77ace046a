"""The check history an incident report correlates: per partition, the latest performance
verdict and the latest drift scores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from aiops_assets.changelog.records import _PAGE, PERFORMANCE_CHECK, _plain, _timestamp, _utc
from aiops_assets.check_history import check_execution_pages, evaluation_of
from aiops_assets.core.incidents import DriftPoint, PerformancePoint

# --- reading check evaluations --------------------------------------------------------------


def _evaluations(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, since: float | None = None
) -> Iterator[tuple[Any, Any]]:
    """Completed evaluations of one check, newest first, with their evaluation data.

    Planned rows (a run still going, or a check skipped) and executions that raised have no
    evaluation: they say nothing about the data, so they are passed over.
    """
    for records in check_execution_pages(instance, check_key, page_size=_PAGE):
        for record in records:
            if since is not None and _check_time(record) < since:
                return  # newest first: everything further is older still
            data = evaluation_of(record)
            if data is not None:
                yield record, data


def _check_time(record: Any) -> float:
    """The evaluation's event time; the row's own timestamp is coarser in some storages."""
    event = record.event
    return float(event.timestamp if event is not None else record.create_timestamp)


def _latest_per_partition(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, since: datetime | None = None
) -> dict[str, tuple[Any, Any]]:
    latest: dict[str, tuple[Any, Any]] = {}
    for record, evaluation in _evaluations(instance, check_key, _timestamp(_utc(since))):
        latest.setdefault(record.partition or "", (record, evaluation))
    return latest


def performance_history(
    instance: dg.DagsterInstance,
    *,
    check_key: dg.AssetCheckKey = PERFORMANCE_CHECK,
    since: datetime | None = None,
) -> list[PerformancePoint]:
    """The model's performance per partition, by partition; a re-run partition counts once.

    Only the latest evaluation of a partition counts: a re-scored day replaces its earlier
    verdict, just as its materialization replaces the earlier scores. ``since`` bounds the
    read to recent evaluations, so the cost follows the window, not the whole history.
    """
    points = []
    for partition, (record, evaluation) in sorted(
        _latest_per_partition(instance, check_key, since).items()
    ):
        metadata = {name: _plain(value) for name, value in evaluation.metadata.items()}
        version = metadata.get("model_version")
        points.append(
            PerformancePoint(
                partition=partition,
                at=datetime.fromtimestamp(_check_time(record), UTC),
                passed=bool(evaluation.passed),
                metrics={
                    name: float(value)
                    for name, value in metadata.items()
                    if isinstance(value, float)
                },
                model_version=int(version) if isinstance(version, int | float) else None,
                implicated=_implicated(metadata.get("implicated_slices")),
            )
        )
    return points


def _implicated(text: Any) -> tuple[str, ...]:
    """``"service=checkout, service=search"`` -> ``("checkout", "search")``."""
    if not isinstance(text, str):
        return ()
    return tuple(item.split("=", 1)[-1].strip() for item in text.split(",") if item.strip())


def drift_history(
    instance: dg.DagsterInstance,
    check_keys: Sequence[dg.AssetCheckKey],
    *,
    since: datetime | None = None,
) -> list[DriftPoint]:
    """Per feature and partition, the drift score the latest evaluation gave and its verdict."""
    points = []
    for check_key in check_keys:
        for partition, (_record, evaluation) in sorted(
            _latest_per_partition(instance, check_key, since).items()
        ):
            metadata = {name: _plain(value) for name, value in evaluation.metadata.items()}
            drifted = {name.strip() for name in str(metadata.get("drifted", "")).split(",")}
            for name, value in sorted(metadata.items()):
                if not name.startswith("score/") or not isinstance(value, int | float):
                    continue
                feature = name[len("score/") :]
                points.append(
                    DriftPoint(
                        partition=partition,
                        feature=feature,
                        effect=float(value),
                        drifted=feature in drifted,
                    )
                )
    return points
