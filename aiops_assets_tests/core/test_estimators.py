"""``core.estimators``: the split the lifecycle trains and gates on, and the recipe a capsule keeps."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from aiops_assets.core import estimators

RECIPE = estimators.EstimatorRecipe(
    features=("x",), label="y", time_column="ts", service_column="service"
)


def _frame(times: list[int], services: int = 2) -> pd.DataFrame:
    rows = [(t, s) for t in times for s in range(services)]
    return pd.DataFrame(
        {
            "ts": pd.Timestamp("2025-03-01") + pd.to_timedelta([t for t, _ in rows], unit="h"),
            "service": [f"s{s}" for _, s in rows],
            "x": np.arange(len(rows), dtype="float64"),
            "y": [i % 2 for i in range(len(rows))],
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 40), min_size=2, max_size=60).filter(lambda t: len(set(t)) > 1),
    fraction=st.floats(0.05, 0.6),
)
def test_the_holdout_is_the_future_and_never_splits_an_instant(
    times: list[int], fraction: float
) -> None:
    recipe = estimators.EstimatorRecipe(
        features=("x",), label="y", time_column="ts", holdout_fraction=fraction
    )
    frame = _frame(times).sample(frac=1.0, random_state=0)  # the input order does not matter
    try:
        train, holdout = recipe.split(frame)
    except ValueError as error:
        assert "empty train or holdout" in str(error)
        return
    assert len(train) + len(holdout) == len(frame)
    assert train["ts"].max() < holdout["ts"].min()
    assert sorted([*train["x"], *holdout["x"]]) == sorted(frame["x"])


def test_the_recipe_survives_its_capsule_and_refuses_a_label_among_the_features() -> None:
    assert estimators.EstimatorRecipe.from_dict(RECIPE.to_dict()) == RECIPE
    with pytest.raises(ValueError, match="cannot also be a feature"):
        estimators.EstimatorRecipe(features=("x", "y"), label="y")
    with pytest.raises(ValueError, match="lacks the columns"):
        RECIPE.split(_frame([1, 2]).drop(columns=["x"]))


def test_training_fits_a_copy_and_measures_on_the_holdout_only() -> None:
    frame = _frame(list(range(40)))
    estimator = LogisticRegression()
    model, metrics = estimators.train_and_evaluate(estimator, RECIPE, frame)
    assert not hasattr(estimator, "coef_")  # the host's estimator stays unfitted
    assert hasattr(model, "coef_")
    assert metrics["rows"] == 20.0  # the latest quarter: 10 of 40 hours, 2 services each
    assert 0.0 <= metrics["false_alarm_rate"] <= 1.0 and 0.0 <= metrics["pr_auc"] <= 1.0


def test_the_metrics_are_the_ones_the_detector_reports() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.7, 0.8, 0.4, 0.2, 0.9])
    metrics = estimators.evaluate(labels, scores, threshold=0.5)
    assert metrics["false_alarm_rate"] == pytest.approx(1 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["alert_rate"] == pytest.approx(0.5)
