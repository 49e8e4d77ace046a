"""Confidence-based performance estimation (NannyML's CBPE idea) for days whose labels are late.

When a day's labels have not arrived, its precision and recall can still be *expected* from the
model's calibrated probabilities: a row alerted on with probability ``p`` of being an incident is
a true positive with probability ``p`` and a false positive with ``1 - p``; a row not alerted on
is a missed incident with probability ``p``. Summing gives the expected confusion matrix, and from
it the expected precision, recall and F1.

Limits (they are why the result is always labelled an estimate):

- it is only as good as the calibration: the calibrator is fitted on the holdout, so it assumes
  ``P(incident | score)`` is the same on the day as on the holdout. Covariate shift (the score
  distribution moves) is handled; concept shift (the same scores now mean something else) is
  not, and no label-free method can see it;
- the isolation forest's scores are not probabilities; :func:`fit_calibrator` maps them with
  isotonic regression, which needs holdout labels of both classes (else there is no estimate);
- expected ratios are ratios of expectations, slightly biased on days with very few alerts.

Plain Python: no orchestrator import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class ExpectedConfusion:
    """Expected counts of one day's confusion matrix, from calibrated probabilities."""

    true_positives: float
    false_positives: float
    false_negatives: float
    true_negatives: float

    @property
    def precision(self) -> float:
        alerted = self.true_positives + self.false_positives
        return self.true_positives / alerted if alerted > 0 else 0.0

    @property
    def recall(self) -> float:
        incidents = self.true_positives + self.false_negatives
        return self.true_positives / incidents if incidents > 0 else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator > 0 else 0.0

    @property
    def false_alarm_rate(self) -> float:
        normal = self.false_positives + self.true_negatives
        return self.false_positives / normal if normal > 0 else 0.0

    @property
    def positives(self) -> float:
        """The expected number of incident rows of the day."""
        return self.true_positives + self.false_negatives

    def metrics(self) -> dict[str, float]:
        return {
            "estimated_precision": self.precision,
            "estimated_recall": self.recall,
            "estimated_f1": self.f1,
            "estimated_false_alarm_rate": self.false_alarm_rate,
            "estimated_positives": self.positives,
        }


def expected_confusion(probabilities: np.ndarray, alerts: np.ndarray) -> ExpectedConfusion:
    """The expected confusion matrix of thresholded decisions ``alerts`` (0/1) whose rows are
    incidents with calibrated probabilities ``probabilities``."""
    p = np.asarray(probabilities, dtype="float64")
    decided = np.asarray(alerts).astype(bool)
    if p.shape != decided.shape:
        raise ValueError(f"{p.size} probabilities for {decided.size} alert decisions")
    if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
        raise ValueError("calibrated probabilities must lie in [0, 1] (no NaN)")
    return ExpectedConfusion(
        true_positives=float(p[decided].sum()),
        false_positives=float((1 - p[decided]).sum()),
        false_negatives=float(p[~decided].sum()),
        true_negatives=float((1 - p[~decided]).sum()),
    )


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from the detector's scores to incident probabilities, fitted on a holdout."""

    model: IsotonicRegression
    fitted_rows: int
    fitted_positives: int

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        values = np.nan_to_num(np.asarray(scores, dtype="float64"), nan=0.0)
        return np.clip(np.asarray(self.model.predict(values), dtype="float64"), 0.0, 1.0)


class CalibrationUnavailable(ValueError):
    """The holdout cannot calibrate the scores (no labels of one class): no estimate."""


def fit_calibrator(scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Isotonic regression of holdout labels on holdout scores.

    Isotonic rather than Platt scaling: the isolation forest's score is monotone in how anomalous
    a row is but nowhere near a sigmoid of it, and isotonic assumes monotonicity only.
    """
    values = np.asarray(scores, dtype="float64")
    truth = np.asarray(labels).astype("int8")
    if values.shape != truth.shape:
        raise ValueError(f"{values.size} scores for {truth.size} labels")
    finite = ~np.isnan(values)
    values, truth = values[finite], truth[finite]
    positives = int(truth.sum())
    if positives == 0 or positives == truth.size:
        raise CalibrationUnavailable(
            f"the holdout has {positives} labeled anomalies in {truth.size} rows: both classes "
            "are needed to calibrate scores into probabilities"
        )
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(values, truth)
    return Calibrator(model=model, fitted_rows=int(truth.size), fitted_positives=positives)


def estimate_performance(
    calibrator: Calibrator, scores: np.ndarray, alerts: np.ndarray
) -> ExpectedConfusion:
    """The day's expected confusion matrix from its raw scores and alert decisions."""
    return expected_confusion(calibrator.probabilities(scores), alerts)
