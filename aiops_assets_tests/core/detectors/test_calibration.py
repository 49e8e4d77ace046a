"""The noise calibration of a likelihood tail: label-free, reproducible, never more confident,
and large exactly where a stream's tail is too confident on noise."""

from __future__ import annotations

import numpy as np

from aiops_assets.core.detectors import (
    build_detector,
    calibrated,
    likelihood_tail,
    noise_series,
    tail_factor,
)

LEARN = 200


def _forest(values: np.ndarray) -> np.ndarray:
    detector = build_detector(
        "isolation_forest", {"windows": (6, 48), "n_estimators": 30, "max_samples": 64}
    )
    return detector.fit(values[:LEARN]).score(values)


def test_the_forests_tail_is_too_confident_on_noise_and_the_factor_corrects_it() -> None:
    series = noise_series(count=4, rows=1600)
    factor = tail_factor(_forest, level=1e-3, history_rows=600, series=series, learn_rows=LEARN)
    assert factor > 2.0  # the raw forest tail pages on noise far more often than 1e-3 says
    # After the correction the share of noise rows below 1e-3 is close to what 1e-3 promises
    # (a first-order correction: within a factor of 2, from more than 2 before).
    raw = fixed = rows = 0
    for values in series:
        tail = likelihood_tail(_forest(values), start=LEARN, history_rows=600)[LEARN:]
        raw += int((tail <= 1e-3).sum())
        fixed += int((calibrated(tail, factor) <= 1e-3).sum())
        rows += len(tail)
    assert raw == round(factor * rows * 1e-3)
    assert fixed < raw and fixed <= 2 * rows * 1e-3
    # Seeded: the same factor every time, so every score using it is reproducible.
    again = tail_factor(_forest, level=1e-3, history_rows=600, series=series, learn_rows=LEARN)
    assert again == factor


def test_a_stream_that_is_never_surprised_keeps_its_tail() -> None:
    def flat(values: np.ndarray) -> np.ndarray:
        return np.zeros(len(values))

    series = noise_series(count=2, rows=800)
    assert tail_factor(flat, series=series, learn_rows=LEARN) == 1.0  # never below 1
    np.testing.assert_array_equal(calibrated(np.array([0.2, 0.9]), 2.0), [0.4, 1.0])
