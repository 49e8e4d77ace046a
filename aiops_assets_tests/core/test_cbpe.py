"""CBPE: expected precision and recall from calibrated probabilities, without labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score

from aiops_assets.core.cbpe import (
    CalibrationUnavailable,
    estimate_performance,
    expected_confusion,
    fit_calibrator,
)


def _realized(labels: np.ndarray, alerts: np.ndarray) -> tuple[float, float, float]:
    return (
        float(precision_score(labels, alerts, zero_division=0.0)),
        float(recall_score(labels, alerts, zero_division=0.0)),
        float(f1_score(labels, alerts, zero_division=0.0)),
    )


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_on_calibrated_probabilities_the_expected_metrics_match_the_realized_ones(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    probabilities = rng.beta(0.3, 3.0, size=40_000)  # mostly normal, a tail of likely incidents
    labels = (rng.random(probabilities.size) < probabilities).astype("int8")
    alerts = (probabilities >= 0.4).astype("int8")
    expected = expected_confusion(probabilities, alerts)
    precision, recall, f1 = _realized(labels, alerts)
    assert expected.precision == pytest.approx(precision, abs=0.02)
    assert expected.recall == pytest.approx(recall, abs=0.02)
    assert expected.f1 == pytest.approx(f1, abs=0.02)
    assert expected.positives == pytest.approx(labels.sum(), rel=0.05)


def test_raw_scores_calibrated_on_a_holdout_estimate_an_unseen_day() -> None:
    """Scores that are no probabilities (as the isolation forest's): isotonic calibration on a
    holdout, then the estimate on another day drawn from the same relation."""
    rng = np.random.default_rng(5)

    def day(rows: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
        latent = rng.normal(shift, 1.0, size=rows)
        labels = (rng.random(rows) < 1 / (1 + np.exp(-(3 * latent - 6)))).astype("int8")
        return np.exp(latent) - 4.0, labels  # monotone, far from [0, 1]

    holdout_scores, holdout_labels = day(30_000, 0.0)
    calibrator = fit_calibrator(holdout_scores, holdout_labels)
    # The new day's scores moved (covariate shift): CBPE follows, as long as P(y | score) holds.
    scores, labels = day(20_000, 0.4)
    alerts = (scores >= np.quantile(holdout_scores, 0.95)).astype("int8")
    expected = estimate_performance(calibrator, scores, alerts)
    precision, recall, _ = _realized(labels, alerts)
    assert expected.precision == pytest.approx(precision, abs=0.04)
    assert expected.recall == pytest.approx(recall, abs=0.04)


def test_a_holdout_without_both_classes_cannot_calibrate() -> None:
    with pytest.raises(CalibrationUnavailable, match="both classes"):
        fit_calibrator(np.arange(10.0), np.zeros(10))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        expected_confusion(np.array([1.5]), np.array([1]))


probabilities = st.lists(
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(probabilities, st.data())
def test_expected_metrics_are_rates_and_the_counts_add_up(
    values: list[float], data: st.DataObject
) -> None:
    p = np.array(values)
    alerts = np.array(data.draw(st.lists(st.booleans(), min_size=p.size, max_size=p.size)))
    expected = expected_confusion(p, alerts)
    for rate in (expected.precision, expected.recall, expected.f1, expected.false_alarm_rate):
        assert 0.0 <= rate <= 1.0
    total = (
        expected.true_positives
        + expected.false_positives
        + expected.false_negatives
        + expected.true_negatives
    )
    assert total == pytest.approx(p.size)
    assert expected.true_positives + expected.false_positives == pytest.approx(alerts.sum())


@settings(max_examples=200, deadline=None)
@given(probabilities, st.data())
def test_more_confidence_in_an_alerted_row_never_lowers_precision_or_recall(
    values: list[float], data: st.DataObject
) -> None:
    p = np.array(values)
    alerts = np.array(data.draw(st.lists(st.booleans(), min_size=p.size, max_size=p.size)))
    row = data.draw(st.integers(0, p.size - 1))
    raised = p.copy()
    raised[row] = data.draw(st.floats(min_value=p[row], max_value=1.0))
    before, after = expected_confusion(p, alerts), expected_confusion(raised, alerts)
    if alerts[row]:
        assert after.precision >= before.precision - 1e-12
        assert after.recall >= before.recall - 1e-12
    else:  # a likelier incident left unalerted is a likelier miss
        assert after.precision == pytest.approx(before.precision)
        assert after.recall <= before.recall + 1e-12


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=4, max_size=80),
    st.data(),
)
def test_calibrated_probabilities_are_monotone_in_the_score(
    scores: list[float], data: st.DataObject
) -> None:
    values = np.array(scores)
    labels = np.array(
        data.draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size))
    )
    if labels.all() or not labels.any():
        labels[0] = not labels[0]
    calibrator = fit_calibrator(values, labels)
    grid = np.sort(np.concatenate([values, [-100.0, 100.0]]))
    mapped = calibrator.probabilities(grid)
    assert np.all(np.diff(mapped) >= -1e-12)
    assert mapped.min() >= 0.0 and mapped.max() <= 1.0
