"""The alarm rule as properties: the likelihood is a probability computed online, a cooldown
never lets two pages closer than it, "any of" is a proper (conservative) combination, and the
spatial rule flags exactly the values outside every earlier one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.detectors import (
    AlarmRule,
    alarm_rows,
    any_tail,
    debounce,
    likelihood_tail,
    spatial_anomalies,
)

flags = st.lists(st.booleans(), min_size=0, max_size=300).map(lambda v: np.array(v, dtype=bool))


@settings(max_examples=100, deadline=None)
@given(flags, st.integers(0, 50), st.integers(0, 40))
def test_debounce_pages_on_the_first_candidate_and_then_after_each_cooldown(
    candidates: np.ndarray, start: int, cooldown: int
) -> None:
    pages = debounce(candidates, start=start, cooldown=cooldown)
    assert all(candidates[pages]) and all(pages >= start)
    assert all(np.diff(pages) > cooldown)
    # Every candidate not paged is inside the cooldown of the page before it.
    for row in np.flatnonzero(candidates):
        if row < start or row in pages:
            continue
        earlier = pages[pages < row]
        assert earlier.size and row - earlier[-1] <= cooldown


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=5, max_size=200),
    st.integers(0, 60),
    st.floats(0.2, 0.95),
)
def test_likelihood_tail_is_a_probability_that_ignores_later_rows(
    scores: list[float], start: int, cut: float
) -> None:
    values = np.array(scores)
    tail = likelihood_tail(values, start=start, average_rows=3, history_rows=50)
    assert ((tail >= 0) & (tail <= 1)).all()
    prefix = max(int(len(values) * cut), 1)
    changed = values.copy()
    changed[prefix:] = 1e6
    np.testing.assert_array_equal(
        tail[:prefix],
        likelihood_tail(changed, start=start, average_rows=3, history_rows=50)[:prefix],
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.floats(0, 1), min_size=10, max_size=10), min_size=1, max_size=4).map(
        np.array
    )
)
def test_any_tail_is_the_bonferroni_minimum(tails: np.ndarray) -> None:
    combined = any_tail(list(tails))
    assert ((combined >= 0) & (combined <= 1)).all()
    assert (combined >= tails.min(axis=0) - 1e-15).all()
    assert (combined <= np.minimum(tails.min(axis=0) * len(tails), 1.0) + 1e-15).all()
    assert np.array_equal(any_tail([tails[0]]), np.minimum(tails[0], 1.0))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=1, max_size=40).map(
        np.array
    ),
    st.sampled_from([0.0, 0.05, 0.5]),
)
def test_spatial_flags_values_beyond_every_earlier_one_in_any_metric(
    values: np.ndarray, tolerance: float
) -> None:
    flagged = spatial_anomalies(values, tolerance)
    assert not flagged[0]
    for row in range(1, len(values)):
        expected = False
        for column in range(values.shape[1]):
            past = values[:row, column]
            margin = tolerance * (past.max() - past.min())
            value = values[row, column]
            expected |= bool(value > past.max() + margin or value < past.min() - margin)
        assert flagged[row] == expected


def test_rule_cooldown_is_a_share_of_the_stream_and_bad_rules_are_refused() -> None:
    rule = AlarmRule(tail_probability=0.01, cooldown_fraction=0.1, spatial_tolerance=None)
    tail = np.ones(100)
    tail[[20, 25, 31, 40]] = 0.0
    assert list(alarm_rows(tail, rule, start=10)) == [20, 31]
    assert rule.cooldown_rows(1000) == 100
    spatial = np.zeros(100, dtype=bool)
    spatial[12] = True
    assert list(alarm_rows(tail, rule, start=10, spatial=spatial)) == [20, 31]  # spatial off
    with_spatial = AlarmRule(tail_probability=0.01, cooldown_fraction=0.1)
    assert list(alarm_rows(tail, with_spatial, start=10, spatial=spatial)) == [12, 25, 40]
    for bad in ({"tail_probability": 0.5}, {"cooldown_fraction": 1.0}, {"spatial_tolerance": -1}):
        with pytest.raises(ValueError):
            AlarmRule(**bad)


def test_a_history_shorter_than_half_the_learning_rows_still_judges_the_stream() -> None:
    # An hourly file keeps a short history beside 750 learning rows: its tail must still be
    # computed (once the history is full), not refused by pandas.
    rng = np.random.default_rng(3)
    scores = rng.normal(0.0, 1.0, 1200)
    scores[1000:1010] += 12.0
    tail = likelihood_tail(scores, start=750, average_rows=3, history_rows=100)
    assert (tail[:100] == 0.5).all()  # no history yet: the average is its own mean (z = 0)
    assert tail[1005] < 1e-6 and np.median(tail[200:1000]) > 0.1
