"""The isolation forest on point-in-time features: the reference pipeline's family, kept.

It is the only family here that weighs metrics jointly, which is why it stays even where a
univariate baseline scores better on NAB's one-metric files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import IsolationForest

from aiops_assets.core.detectors.base import (
    FloatArray,
    as_matrix,
    positive_int,
    trailing_zscore,
)


def forest_features(stream: FloatArray, windows: tuple[int, ...]) -> FloatArray:
    """Per metric: the value, its trailing z-scores and the z-score of its step change."""
    columns: list[FloatArray] = []
    for column in as_matrix(stream).T:
        change = np.diff(column, prepend=column[:1])
        columns.append(np.nan_to_num(column, nan=0.0))
        columns.extend(trailing_zscore(column, window) for window in windows)
        columns.append(trailing_zscore(change, max(windows)))
    return np.column_stack(columns)


@dataclass
class IsolationForestDetector:
    """Isolation forest learned from the first rows' features, scoring every later row.

    ``windows`` are trailing windows in rows; the caller derives them from the sampling step and
    caps them at half the learning rows, so a short file's forest still sees filled windows.
    """

    windows: tuple[int, ...] = (12, 288)
    n_estimators: int = 100
    max_samples: int = 256
    seed: int = 7
    # 0: learn once from the fitted rows. Otherwise relearn every ``refit_rows`` rows from the
    # ``refit_rows`` rows before, so a months-long stream is not judged by its first week.
    refit_rows: int = 0
    _forest: IsolationForest | None = field(default=None, init=False, repr=False)
    _learned_rows: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.windows = tuple(positive_int("window", window, 2) for window in self.windows)
        if not self.windows:
            raise ValueError("the forest needs at least one trailing window")
        positive_int("n_estimators", self.n_estimators)
        positive_int("max_samples", self.max_samples, 2)
        positive_int("refit_rows", self.refit_rows, 0)

    def fit(self, learn: FloatArray) -> IsolationForestDetector:
        self._forest = self._learn(forest_features(learn, self.windows))
        self._learned_rows = len(as_matrix(learn))
        return self

    def _learn(self, features: FloatArray) -> IsolationForest:
        if len(features) < 2:
            raise ValueError("the isolation forest needs at least two rows to learn from")
        return IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(features)),
            random_state=self.seed,
            n_jobs=1,
        ).fit(features)

    def score(self, stream: FloatArray) -> FloatArray:
        if self._forest is None:
            raise RuntimeError("fit the isolation forest before scoring")
        features = forest_features(stream, self.windows)
        scores = -np.asarray(self._forest.score_samples(features), dtype="float64")
        if self.refit_rows == 0:
            return scores
        # Features are trailing, so a row's features never depend on later rows: relearning
        # from the rows before a block and scoring the block stays online.
        for start in range(self._learned_rows, len(features), self.refit_rows):
            forest = self._learn(features[max(0, start - self.refit_rows) : start])
            block = features[start : start + self.refit_rows]
            scores[start : start + len(block)] = -forest.score_samples(block)
        return scores
