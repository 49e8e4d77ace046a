"""The gate's evidence for ``champion_model``: check outcomes read from the instance, the two
models scored on the same rows, and the gate's numbers as plottable metadata."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from aiops_assets.check_history import check_execution_pages
from aiops_assets.core.features import LABEL, TIMESTAMP
from aiops_assets.core.models import AnomalyDetector
from aiops_assets.core.promotion import GateDecision, ScoredRows


def latest_check_outcomes(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, wanted: set[str]
) -> dict[str | None, bool]:
    """The latest completed outcome per partition, paging back until every wanted one is found."""
    latest: dict[str | None, bool] = {}
    for records in check_execution_pages(instance, check_key, page_size=500):
        for record in records:  # newest first
            if record.partition in latest or record.status.value not in ("SUCCEEDED", "FAILED"):
                continue
            latest[record.partition] = record.status.value == "SUCCEEDED"
        if None in latest or wanted <= set(latest):
            break
    return latest


def scored_pair(
    candidate: AnomalyDetector, champion: AnomalyDetector | None, frame: pd.DataFrame
) -> tuple[ScoredRows, ScoredRows] | None:
    """Both models on the same rows, in time order (the bootstrap resamples blocks of time)."""
    if champion is None or frame.empty:
        return None
    ordered = frame.sort_values([TIMESTAMP], kind="mergesort")
    labels = (
        ordered[LABEL].to_numpy().astype("int8")
        if LABEL in ordered
        else np.zeros(len(ordered), "int8")
    )
    try:
        champion_scores = champion.score(ordered)
    except ValueError:
        # A champion trained on another feature set cannot score these rows: no paired
        # comparison is possible, and the gate says so rather than guessing.
        return None
    return (
        ScoredRows(labels=labels, scores=candidate.score(ordered), threshold=candidate.threshold),
        ScoredRows(labels=labels, scores=champion_scores, threshold=champion.threshold),
    )


def gate_numbers(decision: GateDecision) -> dict[str, dg.MetadataValue]:
    """The bootstrap's interval and the shadow metrics as floats, so the UI plots them."""
    numbers: dict[str, dg.MetadataValue] = {}
    bootstrap = decision.evidence.get("bootstrap") or {}
    for name in ("observed_difference", "ci_low", "ci_high", "probability_not_better"):
        if isinstance(bootstrap.get(name), int | float):
            numbers[f"gate_{name}"] = dg.MetadataValue.float(float(bootstrap[name]))
    shadow = decision.evidence.get("shadow") or {}
    for name in ("candidate", "champion", "candidate_alert_rate", "champion_alert_rate"):
        if isinstance(shadow.get(name), int | float):
            numbers[f"shadow_{name}"] = dg.MetadataValue.float(float(shadow[name]))
    return numbers
