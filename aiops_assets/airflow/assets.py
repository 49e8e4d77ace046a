"""The Airflow assets of the reference pipeline: one per Dagster asset, plus the two requests
that close the loop (their events schedule the retraining and the rollback DAGs)."""

from __future__ import annotations

from airflow.sdk import Asset

GROUP = "aiops"


def aiops_asset(name: str) -> Asset:
    """``aiops://reference/<name>``: the Dagster asset key's name, so the two UIs agree."""
    return Asset(name=f"aiops.{name}", uri=f"aiops://reference/{name}", group=GROUP)


SNAPSHOT = aiops_asset("telemetry_snapshot")
FEATURES = aiops_asset("features")
FEATURES_DRIFT = aiops_asset("features.drift")
DRIFT_BASELINE = aiops_asset("drift_baseline")
SCORES = aiops_asset("anomaly_scores")
TRAINING_SET = aiops_asset("training_set")
CANDIDATE = aiops_asset("candidate_model")
CHAMPION = aiops_asset("champion_model")
SCORE_BASELINE = aiops_asset("score_baseline")
INCIDENT_REPORT = aiops_asset("incident_report")
MONITORING_REPORT = aiops_asset("monitoring_report")
RETRAIN_REQUEST = aiops_asset("retrain_request")
ROLLBACK_REQUEST = aiops_asset("rollback_request")
