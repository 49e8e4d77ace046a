"""What every detector shares: the online contract and the trailing statistics it is built from.

The contract is the one a pager needs: ``fit`` learns from the rows a deployment has before it
must alert (NAB's probationary rows), and ``score`` turns the whole stream into one anomaly score
per row in which row ``i`` depends on rows ``0..i`` only. A detector that peeked at later rows
would score well offline and be useless online; the tests check the prefix property directly.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray: TypeAlias = npt.NDArray[np.float64]

# A spread of zero (a flat line) must not turn the first wiggle into an infinite score.
EPSILON = 1e-9


class Detector(Protocol):
    """An online anomaly detector over rows of one or more metrics (columns)."""

    def fit(self, learn: FloatArray) -> Detector:
        """Learn from the first rows of the stream (``rows x metrics``); returns ``self``."""
        ...

    def score(self, stream: FloatArray) -> FloatArray:
        """One score per row, higher is more anomalous; row ``i`` sees rows ``0..i`` only."""
        ...


def as_matrix(values: npt.ArrayLike) -> FloatArray:
    """Rows x metrics as float64: a univariate series becomes one column."""
    matrix = np.asarray(values, dtype="float64")
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise ValueError(f"expected rows x metrics, got an array of shape {matrix.shape}")
    return matrix


def trailing_mean_std(column: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of the ``window`` rows before each row (not the row itself)."""
    rolling = pd.Series(column).rolling(max(window, 2), min_periods=2, closed="left")
    return rolling.mean().to_numpy(), rolling.std().to_numpy()


def trailing_zscore(column: FloatArray, window: int) -> FloatArray:
    """How far each row is from its trailing window, in that window's spreads (0 when unknown)."""
    mean, std = trailing_mean_std(column, window)
    z = (column - mean) / np.maximum(np.nan_to_num(std, nan=0.0), EPSILON)
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def trailing_range(column: FloatArray) -> FloatArray:
    """The span of every earlier value (0 before the second row): a scale floor for flat lines."""
    series = pd.Series(column)
    span = (series.cummax() - series.cummin()).shift(1)
    return span.fillna(0.0).to_numpy()


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
