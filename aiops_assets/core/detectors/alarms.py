"""From a score stream to pages: the anomaly likelihood, a threshold and a cooldown.

A raw score has no natural threshold and its scale changes between files, so the alarm rule is
Numenta's anomaly likelihood: a short moving average of the score against the mean and spread of
that average over a long trailing history, alarming when the normal tail beyond it is small. The
cooldown is a share of the file's length, not a fixed day: a two-week file must not lose a
seventh of itself to one page, and a two-month file should not page hourly about one incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as scipy_stats

from aiops_assets.core.detectors.base import FloatArray, as_matrix

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AlarmRule:
    """How a score stream becomes alarms; every field is a choice the selection protocol makes."""

    tail_probability: float = 1e-4
    cooldown_fraction: float = 0.02
    spatial_tolerance: float | None = 0.05
    average_rows: int = 10
    history_rows: int = 8640

    def __post_init__(self) -> None:
        if not 0.0 < self.tail_probability < 0.5:
            raise ValueError(f"tail_probability must be in (0, 0.5), got {self.tail_probability}")
        if not 0.0 <= self.cooldown_fraction < 1.0:
            raise ValueError(f"cooldown_fraction must be in [0, 1), got {self.cooldown_fraction}")
        if self.spatial_tolerance is not None and self.spatial_tolerance < 0:
            raise ValueError("spatial_tolerance must be >= 0 (or None to switch the rule off)")
        if self.average_rows < 1 or self.history_rows < 2:
            raise ValueError("average_rows must be >= 1 and history_rows >= 2")

    def cooldown_rows(self, rows: int) -> int:
        return round(self.cooldown_fraction * rows)

    def label(self) -> str:
        spatial = "off" if self.spatial_tolerance is None else f"{self.spatial_tolerance:g}"
        return (
            f"tail {self.tail_probability:g}, cooldown {self.cooldown_fraction:g} of rows, "
            f"spatial {spatial}, history {self.history_rows} rows"
        )


def likelihood_tail(
    scores: npt.ArrayLike, *, start: int, average_rows: int = 10, history_rows: int = 8640
) -> FloatArray:
    """Per row, the normal tail beyond its averaged score, against that average's own past.

    Only rows before a row enter its history (``closed="left"``), so the rule runs online; the
    history needs half the learning rows (``start``), or all its own rows if it is shorter,
    before it says anything but 1.
    """
    averaged = (
        pd.Series(np.asarray(scores, dtype="float64")).rolling(average_rows, min_periods=1).mean()
    )
    warm = min(max(start // 2, 2), history_rows)  # a short history warms up on its own rows
    history = averaged.rolling(history_rows, min_periods=warm, closed="left")
    spread = history.std().clip(lower=1e-9)
    standardized = ((averaged - history.mean()) / spread).fillna(0.0).to_numpy()
    return np.asarray(scipy_stats.norm.sf(standardized), dtype="float64")


def any_tail(tails: Sequence[FloatArray]) -> FloatArray:
    """The tail of "any of these detectors is surprised": the smallest, Bonferroni-corrected."""
    if not tails:
        raise ValueError("any_tail needs at least one tail")
    return np.minimum(np.min(np.column_stack(tails), axis=1) * len(tails), 1.0)


def spatial_anomalies(values: npt.ArrayLike, tolerance: float) -> BoolArray:
    """Rows where any metric leaves the range of all its earlier values by ``tolerance`` of it."""
    flagged = np.zeros(len(as_matrix(values)), dtype=bool)
    for column in as_matrix(values).T:
        series = pd.Series(column)
        high = series.cummax().shift(1)
        low = series.cummin().shift(1)
        margin = tolerance * (high - low)
        beyond = (series > high + margin) | (series < low - margin)
        flagged |= beyond.to_numpy(dtype=bool, na_value=False)
    return flagged


def debounce(candidates: BoolArray, *, start: int, cooldown: int) -> IntArray:
    """The rows that page: the first candidate at or after ``start``, then the first one after
    each page's cooldown (``cooldown`` rows of silence after a page)."""
    rows = np.flatnonzero(candidates)
    rows = rows[rows >= start]
    kept: list[int] = []
    position = 0
    while position < len(rows):
        row = int(rows[position])
        kept.append(row)
        position = int(np.searchsorted(rows, row + cooldown + 1, "left"))
    return np.asarray(kept, dtype="int64")


def alarm_rows(
    tail: FloatArray,
    rule: AlarmRule,
    *,
    start: int,
    spatial: BoolArray | None = None,
) -> IntArray:
    """The rows that page under ``rule`` given a stream's likelihood tail (and spatial flags)."""
    candidates = tail <= rule.tail_probability
    if spatial is not None and rule.spatial_tolerance is not None:
        candidates = candidates | spatial
    return debounce(candidates, start=start, cooldown=rule.cooldown_rows(len(tail)))
