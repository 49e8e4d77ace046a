from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops_assets.core.features import FeatureSetSpec, compute_features
from aiops_assets.core.model_codec import dump_detector
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    TRAIN,
    DetectorConfig,
    TrainingSetConfig,
    build_training_set,
    evaluate_detector,
    train_detector,
)


def _labeled_features(days: int = 6, seed: int = 1) -> pd.DataFrame:
    """Two services with injected spikes labeled 1, featurized."""
    rng = np.random.default_rng(seed)
    rows = days * 288
    timestamps = pd.date_range("2026-01-05", periods=rows, freq="5min").astype("datetime64[us]")
    frames = []
    for service in ("api", "db"):
        latency = 50 + rng.normal(0, 2, rows)
        label = np.zeros(rows, dtype="int8")
        for start in rng.choice(np.arange(100, rows - 20), size=3 * days, replace=False):
            latency[start : start + 6] += 40
            label[start : start + 6] = 1
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": timestamps,
                    "service": pd.Series([service] * rows, dtype=object),
                    "latency_ms": latency,
                    "label": label,
                }
            )
        )
    return compute_features(pd.concat(frames, ignore_index=True), FeatureSetSpec())


def test_the_split_is_by_time_with_the_holdout_last() -> None:
    features = _labeled_features()
    training = build_training_set(features, TrainingSetConfig(holdout_days=2))
    train, holdout = training[training[SPLIT] == TRAIN], training[training[SPLIT] == HOLDOUT]
    assert train["timestamp"].max() < holdout["timestamp"].min()
    assert holdout["timestamp"].dt.floor("D").nunique() == 2
    assert len(train) + len(holdout) == len(features)


def test_train_subsampling_is_seeded_and_never_touches_the_holdout() -> None:
    features = _labeled_features()
    config = TrainingSetConfig(holdout_days=2, max_train_rows=500, seed=5)
    first, second = build_training_set(features, config), build_training_set(features, config)
    pd.testing.assert_frame_equal(first, second)
    other = build_training_set(
        features, TrainingSetConfig(holdout_days=2, max_train_rows=500, seed=6)
    )
    assert not first[first[SPLIT] == TRAIN].equals(other[other[SPLIT] == TRAIN])
    assert (first[SPLIT] == TRAIN).sum() == 500
    assert (first[SPLIT] == HOLDOUT).sum() == (features["timestamp"] >= "2026-01-09").sum()


def test_a_holdout_that_would_leave_nothing_to_train_on_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to train on"):
        build_training_set(_labeled_features(days=2), TrainingSetConfig(holdout_days=2))


def test_training_is_reproducible_to_the_byte() -> None:
    training = build_training_set(_labeled_features(), TrainingSetConfig(holdout_days=2))
    config = DetectorConfig(n_estimators=50, seed=11)
    first, second = train_detector(training, config), train_detector(training, config)
    assert dump_detector(first) == dump_detector(second)
    different_seed = train_detector(training, DetectorConfig(n_estimators=50, seed=12))
    assert dump_detector(different_seed) != dump_detector(first)


def test_the_detector_finds_the_injected_anomalies_on_the_holdout() -> None:
    training = build_training_set(_labeled_features(), TrainingSetConfig(holdout_days=2))
    detector = train_detector(training, DetectorConfig(n_estimators=100))
    metrics = evaluate_detector(detector, training[training[SPLIT] == HOLDOUT])
    assert set(metrics) >= {"precision", "recall", "f1", "pr_auc"}
    assert metrics["pr_auc"] > 0.5, metrics
    assert metrics["f1"] > 0.4, metrics
    random_scores_pr_auc = metrics["positive_rate"]
    assert metrics["pr_auc"] > 3 * random_scores_pr_auc


def test_scoring_refuses_frames_without_the_models_inputs() -> None:
    training = build_training_set(_labeled_features(), TrainingSetConfig(holdout_days=2))
    detector = train_detector(training, DetectorConfig(n_estimators=20))
    with pytest.raises(ValueError, match="input columns"):
        detector.score(training.drop(columns=[detector.feature_columns[0]]))


def test_an_alert_budget_places_the_threshold_at_that_train_quantile() -> None:
    training = build_training_set(_labeled_features(), TrainingSetConfig(holdout_days=2))
    detector = train_detector(training, DetectorConfig(n_estimators=20, alert_quantile=0.9))
    train = training[training["split"] == "train"]
    assert abs(float(detector.predict(train).mean()) - 0.1) < 0.02
    with pytest.raises(ValueError, match="alert_quantile"):
        DetectorConfig(alert_quantile=0.2)
