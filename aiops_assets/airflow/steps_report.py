"""``monitoring_report``: drift, quality and performance of the last days, laid out by day.

``core/monitoring_report.py`` renders it, as for the Dagster asset; the verdicts come from the
facts the provider's steps stored per day (the snapshot's quality checks, the features' drift, the
scores' prediction drift and performance) instead of Dagster's check history. The report (the
table rows and the markdown with its chart) is stored under ``assets/monitoring_report/<day>``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiops_assets.airflow.config import ProviderConfig
from aiops_assets.airflow.records import DRIFT_CHECK, StepResult, asset_ref_name, get_facts
from aiops_assets.airflow.steps_data import SCORE_DRIFT_FACTS
from aiops_assets.core import monitoring_report as report
from aiops_assets.core.pipeline.features import FEATURES_ASSET
from aiops_assets.core.pipeline.scoring import PERFORMANCE_CHECK_NAME, SCORES_ASSET
from aiops_assets.core.pipeline.snapshot import SNAPSHOT_ASSET
from aiops_assets.core.store import ArtifactStore

LOG = logging.getLogger(__name__)
REPORT_ASSET = "monitoring_report"
REPORT_CODE_VERSION = "monitoring_report-1"  # the Dagster asset's layout
DEFAULT_PARTITIONS = 14
DRIFT_FACTS = (
    (f"{FEATURES_ASSET}.{DRIFT_CHECK}", "checks/" + DRIFT_CHECK),
    (f"{SCORES_ASSET}.{DRIFT_CHECK}", SCORE_DRIFT_FACTS),
)


def _drift_verdict(check: str, facts: dict[str, Any]) -> report.CheckVerdict:
    effects = {f"score/{name}": float(value) for name, value in facts["feature_effects"].items()}
    return report.CheckVerdict(
        check=check,
        passed=bool(facts.get("passed")),
        severity=str(facts.get("severity", "WARN")),
        metadata={"drifted": facts.get("drifted", ""), **effects},
    )


def day_report(store: ArtifactStore, day: str) -> report.DayReport:
    """The day's latest verdicts: each step's facts are rewritten by a re-run of the day."""
    drift = []
    for check, facts_name in DRIFT_FACTS:
        facts = get_facts(store, facts_name, day)
        if facts and "feature_effects" in facts:
            drift.append(_drift_verdict(check, facts))
    snapshot = get_facts(store, "checks/" + SNAPSHOT_ASSET, day) or {}
    quality = [
        report.CheckVerdict(
            check=f"{SNAPSHOT_ASSET}.{name}",
            passed=bool(result.get("passed")),
            severity=str(result.get("severity", "ERROR")),
            metadata={"failed_expectations": result.get("failed_expectations", 0)},
        )
        for name, result in sorted(dict(snapshot.get("checks", {})).items())
    ]
    scored = get_facts(store, "checks/" + PERFORMANCE_CHECK_NAME, day)
    performance = (
        report.CheckVerdict(
            check=f"{SCORES_ASSET}.{PERFORMANCE_CHECK_NAME}",
            passed=bool(scored.get("passed")),
            severity=str(scored.get("severity", "ERROR")),
            metadata=scored,
        )
        if scored
        else None
    )
    return report.DayReport(partition=day, drift=drift, quality=quality, performance=performance)


def monitoring_report_step(
    config: ProviderConfig, day: str, partitions: int = DEFAULT_PARTITIONS
) -> StepResult:
    """The report of the ``partitions`` days ending with ``day``, stored for the day."""
    keys = [key for key in config.day_keys() if key <= day][-partitions:] or [day]
    store = config.store()
    days = [day_report(store, key) for key in keys]
    title = f"Monitoring, {days[0].partition} to {days[-1].partition}"
    try:
        png: bytes | None = report.render_png(days)
    except report.PlotsUnavailable as error:
        LOG.info("no chart: %s", error)
        png = None
    rows = [item.row() for item in days]
    ref = store.put_json({"rows": rows, "markdown": report.markdown(days, title=title, png=png)})
    store.set_ref(asset_ref_name(REPORT_ASSET, day), ref)
    today = rows[-1]
    return StepResult(
        asset=REPORT_ASSET,
        partition=day,
        sha256=ref.sha256,
        code_version=REPORT_CODE_VERSION,
        facts={
            "partitions": len(days),
            "drift": today["drift"],
            "quality": today["quality"],
            "performance": today["performance"],
            **{
                name: today[name]
                for name in ("drift_max_effect", "f1", "false_alarm_rate")
                if today.get(name) is not None
            },
        },
    )


__all__ = ["day_report", "monitoring_report_step"]
