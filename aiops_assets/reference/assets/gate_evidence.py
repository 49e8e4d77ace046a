"""The detector's side of the gate's evidence: both detectors scored on the same rows.

Everything else the gate weighs (check outcomes, the gate's numbers) is the lifecycle's, the same
for every model (``aiops_assets/lifecycle/evidence.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops_assets.core.features import LABEL, TIMESTAMP
from aiops_assets.core.models import AnomalyDetector
from aiops_assets.core.promotion import ScoredRows
from aiops_assets.lifecycle.evidence import paired_rows


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
    return paired_rows(
        lambda model, rows: model.score(rows),  # type: ignore[attr-defined]
        lambda model: model.threshold,  # type: ignore[attr-defined]
        candidate,
        champion,
        ordered,
        labels,
    )
