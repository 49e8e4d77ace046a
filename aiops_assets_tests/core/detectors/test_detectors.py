"""Every detector family through its public contract: online (a row sees only its past), blind
to the scale of the metric where it claims to be, and alarming on what an operator would call an
anomaly, univariate and multivariate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.detectors import FAMILIES, build_detector

PERIOD = 48
SMALL: dict[str, dict[str, Any]] = {
    "isolation_forest": {"windows": (4, PERIOD), "n_estimators": 20, "max_samples": 64},
    "seasonal_residual": {"period": PERIOD, "seasons": 3, "local": 4, "scale_rows": PERIOD},
    "ewma": {"halflife": 6},
    "ensemble": {
        "components": [["ewma", {"halflife": 6}], ["seasonal_residual", {"period": PERIOD}]],
        "history_rows": 2 * PERIOD,
    },
}


def daily(rows: int, seed: int, columns: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cycle = np.sin(np.arange(rows) * 2 * math.pi / PERIOD)[:, None]
    return 10 + 3 * cycle + rng.normal(0, 0.3, (rows, columns))


def test_every_family_is_buildable_by_name() -> None:
    assert set(SMALL) == set(FAMILIES)
    for name in FAMILIES:
        scores = build_detector(name, SMALL[name]).fit(daily(60, 0)).score(daily(200, 0))
        assert scores.shape == (200,) and np.isfinite(scores).all()


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("prophet", {}, "unknown detector family 'prophet'"),
        ("ewma", {"span": 3}, "detector 'ewma'"),
        ("ewma", {"halflife": 0}, "halflife must be an integer >= 1"),
        ("seasonal_residual", {"seasons": -1}, "seasons must be an integer >= 0"),
        ("isolation_forest", {"windows": ()}, "at least one trailing window"),
    ],
)
def test_bad_families_and_parameters_are_named(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_detector(name, params)


def test_scoring_before_fitting_is_refused() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        build_detector("isolation_forest", SMALL["isolation_forest"]).score(daily(50, 0))


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(FAMILIES),
    seed=st.integers(0, 2**16),
    rows=st.integers(120, 260),
    cut=st.floats(0.4, 0.95),
)
def test_a_rows_score_depends_on_its_past_only(name: str, seed: int, rows: int, cut: float) -> None:
    stream = daily(rows, seed)
    prefix = int(rows * cut)
    stream_future = stream.copy()
    stream_future[prefix:] += np.random.default_rng(seed + 1).normal(0, 50, (rows - prefix, 1))
    learn = stream[:60]
    full = build_detector(name, SMALL[name]).fit(learn).score(stream)
    changed = build_detector(name, SMALL[name]).fit(learn).score(stream_future)
    # Rows before the change score the same whatever comes after them.
    np.testing.assert_allclose(full[:prefix], changed[:prefix], rtol=1e-9, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(["seasonal_residual", "ewma"]),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.01, 1000.0),
    shift=st.floats(-1e4, 1e4),
)
def test_univariate_scores_ignore_the_metrics_unit_and_offset(
    name: str, seed: int, scale: float, shift: float
) -> None:
    stream = daily(200, seed)
    moved = stream * scale + shift
    original = build_detector(name, SMALL[name]).fit(stream[:60]).score(stream)
    rescaled = build_detector(name, SMALL[name]).fit(moved[:60]).score(moved)
    np.testing.assert_allclose(original, rescaled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_scores_a_spike_and_a_level_shift_above_normal_rows(name: str) -> None:
    stream = daily(400, 5)
    stream[250] += 8.0  # a spike
    stream[330:] += 6.0  # an outage-like jump
    scores = build_detector(name, SMALL[name]).fit(stream[:100]).score(stream)
    normal = np.concatenate([scores[100:245], scores[255:325]])
    assert scores[250] > normal.max()
    assert scores[330:335].max() > normal.max()


@pytest.mark.parametrize("name", ["seasonal_residual", "ewma", "ensemble"])
def test_a_spike_in_one_metric_of_several_stands_out(name: str) -> None:
    stream = daily(400, 9, columns=3)
    stream[300, 2] += 8.0
    scores = build_detector(name, SMALL[name]).fit(stream[:100]).score(stream)
    assert int(np.argmax(scores[100:])) + 100 == 300


def test_the_forest_sees_two_metrics_part_ways_while_each_stays_in_range() -> None:
    # CPU and request rate move together; for a while they part (each within its usual range),
    # which no per-metric detector can see.
    together = daily(400, 4)
    stream = np.column_stack(
        [together[:, 0], together[:, 0] + np.random.default_rng(1).normal(0, 0.1, 400)]
    )
    stream[300:310, 1] = 20.0 - stream[300:310, 0]
    params = {**SMALL["isolation_forest"], "n_estimators": 100}
    scores = build_detector("isolation_forest", params).fit(stream[:200]).score(stream)
    # Modest, as measured: the forest's per-metric features dilute the joint signal, so the
    # parted stretch scores above a typical row rather than above every row.
    assert scores[300:310].mean() > np.median(scores[200:295]) + 0.02
    for column in (0, 1):
        assert stream[300:310, column].max() <= stream[:200, column].max() + 0.5
        assert stream[300:310, column].min() >= stream[:200, column].min() - 0.5


def test_the_forest_relearns_from_recent_rows_when_asked() -> None:
    stream = daily(600, 2)
    stream[200:] += 5.0  # a new normal that lasts
    static = build_detector("isolation_forest", SMALL["isolation_forest"])
    relearning = build_detector(
        "isolation_forest", {**SMALL["isolation_forest"], "refit_rows": 100}
    )
    static_scores = static.fit(stream[:100]).score(stream)
    relearned = relearning.fit(stream[:100]).score(stream)
    np.testing.assert_array_equal(static_scores[:100], relearned[:100])
    # A month after the shift the static forest still finds every row strange; the relearning
    # one has taken the new level as normal.
    assert relearned[500:].mean() < static_scores[500:].mean()
