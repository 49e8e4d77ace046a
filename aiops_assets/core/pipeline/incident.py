"""An incident report from what the ledger alone records: the performance checks per version
and every move of the champion alias.

The Dagster side (``aiops incident``) also reads the instance's change log (data, code, config,
environment changes, replays); an orchestrator without that log still gets the boundary (last
passing, first failing check), the serving-config suspects ranked by the same engine and the
drift the days showed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiops_assets.core.incidents import (
    Change,
    DriftPoint,
    IncidentReport,
    PerformancePoint,
    build_incident_report,
)
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.pipeline.scoring import PERFORMANCE_CHECK_NAME


def alias_changes(ledger: Ledger, model_name: str) -> list[Change]:
    """Each move of an alias, worded as the change log (``changelog/changes.py``) shows it."""
    changes = []
    for entry in ledger.alias_history(model_name):
        old = f"v{entry.from_version}" if entry.from_version is not None else "-"
        changes.append(
            Change(
                kind="alias",
                subject=f"{model_name}:{entry.alias}",
                at=entry.at,
                summary=(
                    f"{model_name}:{entry.alias} {entry.kind} {old} -> v{entry.to_version} "
                    f"by {entry.actor}: {entry.reason}"
                ),
                run_id=entry.run_id,
                before=entry.from_version,
                after=entry.to_version,
                lineage_distance=0,
                details={
                    "to_version": entry.to_version,
                    "kind": entry.kind,
                    "actor": entry.actor,
                    "reason": entry.reason,
                },
            )
        )
    return changes


def performance_points(ledger: Ledger, model_name: str) -> list[PerformancePoint]:
    """Every recorded performance check of every version, as the incident engine reads them."""
    points = []
    for version in ledger.list_versions(model_name):
        for check in ledger.version_checks(model_name, version.version):
            if check.check_name != PERFORMANCE_CHECK_NAME or check.partition is None:
                continue
            points.append(
                PerformancePoint(
                    partition=check.partition,
                    at=check.at,
                    passed=check.passed,
                    metrics={
                        name: float(value)
                        for name, value in check.metrics.items()
                        if isinstance(value, int | float) and not isinstance(value, bool)
                    },
                    model_version=version.version,
                )
            )
    return points


def ledger_incident_report(
    ledger: Ledger,
    model_name: str,
    drift: Sequence[DriftPoint] = (),
    *,
    at: datetime | None = None,
    metric: str = "f1",
) -> IncidentReport | None:
    """None when the model never failed its performance check (no incident to explain)."""
    return build_incident_report(
        model_name,
        alias_changes(ledger, model_name),
        performance_points(ledger, model_name),
        drift,
        at=at,
        metric=metric,
    )
