"""An exponentially weighted Gaussian: the streaming detector with constant memory per metric.

Windowed Gaussian done right for a stream: mean and variance decay with a half-life instead of
being forgotten at a window edge, and each row is judged against the state before it. It is the
cheapest family and the one to run on thousands of series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aiops_assets.core.detectors.base import (
    EPSILON,
    FloatArray,
    as_matrix,
    positive_int,
    trailing_range,
)


@dataclass
class EwmaDetector:
    """``|x - mean| / std`` against the exponentially weighted state of the earlier rows."""

    halflife: int = 12

    def __post_init__(self) -> None:
        positive_int("halflife", self.halflife)

    def fit(self, learn: FloatArray) -> EwmaDetector:
        as_matrix(learn)  # the state is the stream's own; learning rows warm it up in score()
        return self

    def score(self, stream: FloatArray) -> FloatArray:
        scores = [self._score_column(column) for column in as_matrix(stream).T]
        return np.max(np.column_stack(scores), axis=1)

    def _score_column(self, column: FloatArray) -> FloatArray:
        series = pd.Series(column)
        weighted = series.ewm(halflife=self.halflife, min_periods=2)
        mean = weighted.mean().shift(1).to_numpy()
        std = np.sqrt(weighted.var().shift(1).to_numpy())
        span = trailing_range(column)
        floor = 1e-3 * span + EPSILON
        deviation = np.abs(column - mean) / np.maximum(np.nan_to_num(std, nan=0.0), floor)
        # No spread in the past, no unit to measure a surprise in (the spatial rule sees it).
        deviation = np.where(span > 0, deviation, 0.0)
        # log1p for the same reason as the seasonal residual: a near-normal tail for the likelihood.
        return np.log1p(np.nan_to_num(deviation, nan=0.0, posinf=0.0))
