"""The incident report after a regression: ``core/pipeline/incident.py`` on the shared ledger,
with the drift the days showed, stored as an artifact next to the models it explains.

``aiops incident`` on an Airflow home reads the same facts through :func:`drift_points`, so this
module stays light: the store, the ledger and the incident engine, no pipeline step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from aiops_assets.airflow.records import (
    DRIFT_CHECK,
    StepResult,
    StepSkipped,
    asset_ref_name,
    fact_partitions,
    get_facts,
)
from aiops_assets.core.incidents import DriftPoint
from aiops_assets.core.pipeline.incident import ledger_incident_report

if TYPE_CHECKING:
    from aiops_assets.airflow.config import ProviderConfig
    from aiops_assets.core.store import ArtifactStore

INCIDENT_ASSET = "incident_report"
INCIDENT_CODE_VERSION = "incident_report-1"
DRIFT_FACTS = "checks/" + DRIFT_CHECK


def drift_points(store: ArtifactStore, days: Sequence[str] | None = None) -> list[DriftPoint]:
    """Each day's feature effects and verdicts, from the drift check's stored facts; ``days``
    None reads every day the store has a drift result for."""
    points = []
    for day in fact_partitions(store, DRIFT_FACTS) if days is None else days:
        facts = get_facts(store, DRIFT_FACTS, day) or {}
        verdicts = dict(facts.get("feature_verdicts", {}))
        for feature, effect in sorted(dict(facts.get("feature_effects", {})).items()):
            points.append(
                DriftPoint(
                    partition=day,
                    feature=feature,
                    effect=float(effect),
                    drifted=verdicts.get(feature, "ok") != "ok",
                )
            )
    return points


def incident_step(config: ProviderConfig, at: datetime | None = None) -> StepResult:
    """The report on the latest failing performance check (at or before ``at``)."""
    # Here, not at the top: the registry loads the model codec, which the CLI's reader never needs.
    from aiops_assets.core.registry import MODEL_NAME

    store = config.store()
    report = ledger_incident_report(
        config.ledger(), MODEL_NAME, drift_points(store, config.day_keys()), at=at
    )
    if report is None:
        raise StepSkipped(f"{MODEL_NAME} never failed its performance check: no incident")
    ref = store.put_json({**report.to_dict(), "markdown": report.markdown()})
    store.set_ref(asset_ref_name(INCIDENT_ASSET, None), ref)
    return StepResult(
        asset=INCIDENT_ASSET,
        partition=None,
        sha256=ref.sha256,
        code_version=INCIDENT_CODE_VERSION,
        facts={
            "verdict": report.verdict(),
            "likely_cause": report.likely_cause(),
            "first_failing": report.window.first_bad.partition,
            "suspects": [suspect.change.summary for suspect in report.suspects[:3]],
        },
    )
