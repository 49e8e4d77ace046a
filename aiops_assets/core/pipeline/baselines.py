"""The prediction-drift reference: the champion's scores on its own training rows, calibrated
per training partition. Dagster-free, so the reference's ``score_baseline`` asset and the
Airflow provider build the same profile bytes from the same inputs with one function."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from aiops_assets.core.drift import BaselineProfile, build_profile, calibrate
from aiops_assets.core.features import LABEL, TIMESTAMP
from aiops_assets.core.models import HOLDOUT, SCORE, SPLIT, AnomalyDetector, score_frame

SCORE_BASELINE_ASSET = "score_baseline"
SCORE_BASELINE_CODE_VERSION = "score_baseline-1"


def partition_chunks(frame: pd.DataFrame, partitions: Sequence[str]) -> list[pd.DataFrame]:
    """``frame``'s rows per partition, oldest first: the drift check judges one partition at a
    time, so the baseline is calibrated on chunks of that size (an hour each for hourly
    partitions; a day's chunk would calibrate thresholds far too tight for an hour's rows).

    ``partitions`` are time keys (``2026-01-05``, ``2026-01-05T03``); without them, by day.
    """
    if not partitions:
        return [day for _, day in frame.groupby(frame[TIMESTAMP].dt.floor("D"))]
    starts = np.sort(pd.to_datetime(list(partitions)).to_numpy("datetime64[ns]"))
    stamps = frame[TIMESTAMP].to_numpy("datetime64[ns]")
    position = np.searchsorted(starts, stamps, side="right") - 1
    return [chunk for _, chunk in frame.groupby(position) if not chunk.empty]


def score_profile(
    detector: AnomalyDetector, training: pd.DataFrame, partitions: Sequence[str]
) -> tuple[BaselineProfile, int, pd.DataFrame]:
    """The profile, the number of partitions it was calibrated on (0: too few to measure the
    spread, the policy's plain floors apply) and the scored training rows."""
    train = training[training[SPLIT] != HOLDOUT]
    scores = score_frame(detector, train)
    profile = build_profile(scores, numeric=[], predictions=[SCORE], labels=[LABEL])
    chunks = partition_chunks(scores, partitions)
    if len(chunks) < 2:
        return profile, 0, scores
    return calibrate(profile, chunks), len(chunks), scores


__all__ = [
    "SCORE_BASELINE_ASSET",
    "SCORE_BASELINE_CODE_VERSION",
    "partition_chunks",
    "score_profile",
]
