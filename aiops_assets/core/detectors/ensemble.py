"""An ensemble: the mean of several detectors' scores, each measured against its own past.

Families fail differently (the forest on a slow drift, the seasonal baseline on a file with no
cycle, the EWMA on a slow ramp); averaging their *standardized* scores keeps what they agree on.
Each component's score is turned into a trailing z-score first, because raw scores live on
unrelated scales (a forest's depth, a residual in MADs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aiops_assets.core.detectors.base import Detector, FloatArray, positive_int, trailing_zscore


def combine_scores(streams: Sequence[FloatArray], history_rows: int) -> FloatArray:
    """Mean of the components' trailing z-scores (negative ones count as 0: not anomalous)."""
    if not streams:
        raise ValueError("an ensemble needs at least one component")
    standardized = [
        np.clip(trailing_zscore(np.asarray(stream, dtype="float64"), history_rows), 0.0, None)
        for stream in streams
    ]
    return np.mean(np.column_stack(standardized), axis=1)


@dataclass
class EnsembleDetector:
    """Fits and scores each component, then combines them with :func:`combine_scores`."""

    components: Sequence[Detector]
    history_rows: int = 2016
    _fitted: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("an ensemble needs at least one component")
        positive_int("history_rows", self.history_rows, 2)

    def fit(self, learn: FloatArray) -> EnsembleDetector:
        for component in self.components:
            component.fit(learn)
        self._fitted = True
        return self

    def score(self, stream: FloatArray) -> FloatArray:
        if not self._fitted:
            raise RuntimeError("fit the ensemble before scoring")
        return combine_scores(
            [component.score(stream) for component in self.components], self.history_rows
        )
