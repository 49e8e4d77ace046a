"""Forecast residuals against a robust seasonal baseline: "is this unlike the same hour lately?"

Operational telemetry is dominated by its daily cycle, so the question an operator asks is how
far a value is from what the same time of day usually looks like. The forecast is the median of
the value one, two, ... ``seasons`` periods ago (a median, so one bad day does not move it); until
a full period of history exists, or with ``seasons=0``, it is the median of the last ``local``
rows. The residual is scaled by its own trailing median absolute value, so a noisy metric and a
quiet one alarm on the same kind of surprise.
"""

from __future__ import annotations

import warnings
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

# The MAD of a normal sample times this is its standard deviation.
_MAD_TO_STD = 1.4826


def seasonal_forecast(column: FloatArray, *, period: int, seasons: int, local: int) -> FloatArray:
    """Each row's forecast from earlier rows only: seasonal median, else a trailing median."""
    series = pd.Series(column)
    fallback = series.rolling(local, min_periods=1, closed="left").median().to_numpy()
    if seasons == 0 or period < 2:
        return fallback
    lagged = np.column_stack([series.shift(k * period).to_numpy() for k in range(1, seasons + 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no season yet
        seasonal = np.nanmedian(lagged, axis=1)
    return np.where(np.isnan(seasonal), fallback, seasonal)


@dataclass
class SeasonalResidualDetector:
    """Scaled absolute residual against the seasonal (or local) median forecast."""

    period: int = 288
    seasons: int = 3
    local: int = 12
    scale_rows: int = 288

    def __post_init__(self) -> None:
        positive_int("period", self.period)
        positive_int("seasons", self.seasons, 0)
        positive_int("local", self.local)
        positive_int("scale_rows", self.scale_rows, 2)

    def fit(self, learn: FloatArray) -> SeasonalResidualDetector:
        # Nothing to learn offline: the baseline is the stream's own past, row by row.
        as_matrix(learn)
        return self

    def score(self, stream: FloatArray) -> FloatArray:
        scores = [self._score_column(column) for column in as_matrix(stream).T]
        return np.max(np.column_stack(scores), axis=1)

    def _score_column(self, column: FloatArray) -> FloatArray:
        forecast = seasonal_forecast(
            column, period=self.period, seasons=self.seasons, local=self.local
        )
        residual = np.abs(np.nan_to_num(column - forecast, nan=0.0))
        scale = (
            pd.Series(residual)
            .rolling(self.scale_rows, min_periods=1, closed="left")
            .median()
            .to_numpy()
            * _MAD_TO_STD
        )
        # A flat line has no spread: measure surprise against a sliver of the value range instead.
        span = trailing_range(column)
        floor = 1e-3 * span + EPSILON
        # Until the past has any spread there is no unit to measure a surprise in: score 0 (the
        # spatial rule of the alarms still sees the first move off a constant).
        residual = np.where(span > 0, residual, 0.0)
        # log1p: the surprise in MADs is heavy-tailed; its log is close enough to normal for the
        # likelihood rule (which assumes a normal tail) to place its threshold sensibly.
        return np.log1p(residual / np.maximum(np.nan_to_num(scale, nan=0.0), floor))
