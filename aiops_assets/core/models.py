"""Training sets, anomaly-detector training, scoring and evaluation (scikit-learn), all seeded.

Reproducibility is the contract here: the same training set, config and seed must give a model whose
stored bytes (``core.model_codec``), and so whose SHA-256, are identical, and the same metrics. That is why every random
choice takes the config's seed, training is single-threaded, and the training set is split by time
(never shuffled across time), so the holdout is always the future relative to what the model saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
)
from sklearn.pipeline import Pipeline

from aiops_assets.core.features import LABEL, SERVICE, TIMESTAMP, model_input_columns

SPLIT = "split"
TRAIN = "train"
HOLDOUT = "holdout"


@dataclass(frozen=True)
class TrainingSetConfig:
    """How to cut features into a training and a holdout part."""

    holdout_days: int = 4
    max_train_rows: int = 200_000
    seed: int = 17

    def __post_init__(self) -> None:
        if self.holdout_days < 1:
            raise ValueError(
                "holdout_days must be at least 1: a model needs a future to be judged on"
            )
        if self.max_train_rows < 100:
            raise ValueError("max_train_rows below 100 leaves too little to learn from")


def build_training_set(features: pd.DataFrame, config: TrainingSetConfig) -> pd.DataFrame:
    """Add a ``split`` column: the last ``holdout_days`` whole days are the holdout.

    When the train part exceeds ``max_train_rows`` it is subsampled with the config's seed (and the
    sample keeps time order); the holdout is never subsampled, so metrics stay comparable.
    """
    if features.empty:
        raise ValueError("cannot build a training set from an empty feature frame")
    days = features[TIMESTAMP].dt.floor("D")
    distinct_days = np.sort(days.unique())
    if len(distinct_days) <= config.holdout_days:
        raise ValueError(
            f"features cover {len(distinct_days)} day(s); holdout_days={config.holdout_days} would leave "
            "nothing to train on (materialize more partitions or lower holdout_days)"
        )
    holdout_start = pd.Timestamp(distinct_days[-config.holdout_days])
    is_holdout = (features[TIMESTAMP] >= holdout_start).to_numpy()
    train = features.loc[~is_holdout]
    if len(train) > config.max_train_rows:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(train), size=config.max_train_rows, replace=False))
        train = train.iloc[keep]
    holdout = features.loc[is_holdout]
    result = pd.concat(
        [train.assign(**{SPLIT: TRAIN}), holdout.assign(**{SPLIT: HOLDOUT})], ignore_index=True
    )
    return result.sort_values([TIMESTAMP, SERVICE], kind="mergesort").reset_index(drop=True)


def assemble_training_set(
    features_by_partition: Mapping[str, pd.DataFrame], config: TrainingSetConfig
) -> pd.DataFrame:
    """The training set from feature partitions, concatenated in partition order.

    The one code path for both the ``training_set`` asset and ``aiops reproduce``: any other
    order of concatenation would give the same rows with different bytes.
    """
    if not features_by_partition:
        raise ValueError("no feature partitions to build a training set from")
    combined = pd.concat(
        [features_by_partition[key] for key in sorted(features_by_partition)], ignore_index=True
    )
    return build_training_set(combined, config)


@dataclass(frozen=True)
class DetectorConfig:
    """Isolation-forest settings; ``seed`` drives every random choice in training."""

    n_estimators: int = 200
    max_samples: int = 512
    seed: int = 7
    # Used to place the alert threshold when the train split has no labeled anomalies at all.
    fallback_alert_quantile: float = 0.995
    # An alert budget: when set, the threshold is this quantile of the train scores instead of the
    # F1-optimal one (teams that can handle only so many pages a day set it).
    alert_quantile: float | None = None

    def __post_init__(self) -> None:
        if self.alert_quantile is not None and not 0.5 <= self.alert_quantile < 1.0:
            raise ValueError(
                f"alert_quantile must be in [0.5, 1) (the share of train rows below the alert "
                f"threshold), got {self.alert_quantile}"
            )

    def config_hash(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class AnomalyDetector:
    """A fitted pipeline plus the alert threshold and the exact input columns it expects."""

    pipeline: Pipeline
    threshold: float
    feature_columns: list[str]
    config: DetectorConfig

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Higher means more anomalous (the negated isolation-forest score)."""
        missing = [column for column in self.feature_columns if column not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks the detector's input columns {missing[:5]}")
        matrix = frame[self.feature_columns].to_numpy(dtype="float64", na_value=np.nan)
        return -np.asarray(self.pipeline.score_samples(matrix), dtype="float64")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.score(frame) >= self.threshold).astype("int8")


def train_detector(training_set: pd.DataFrame, config: DetectorConfig) -> AnomalyDetector:
    """Fit on the normal rows of the train split and place the threshold on the train split.

    Rows labeled anomalous are left out of fitting (the forest should learn what normal looks like);
    the threshold is the one that maximizes F1 on the whole train split, so the holdout's labels are
    never looked at before evaluation.
    """
    train = training_set[training_set[SPLIT] == TRAIN] if SPLIT in training_set else training_set
    if train.empty:
        raise ValueError("the training set has no train rows")
    columns = model_input_columns(train)
    if not columns:
        raise ValueError("the training set has no model input columns (z-scores, changes, ratios)")
    labels = train[LABEL].to_numpy() if LABEL in train else np.zeros(len(train), dtype="int8")
    normal = train[labels == 0]
    matrix = normal[columns].to_numpy(dtype="float64", na_value=np.nan)
    # All-NaN columns (a metric missing for the whole window) would make the imputer drop them and
    # shift column positions; keep them as zeros so the input layout stays fixed.
    pipeline = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            (
                "forest",
                IsolationForest(
                    n_estimators=config.n_estimators,
                    max_samples=min(config.max_samples, len(normal)),
                    random_state=config.seed,
                    n_jobs=1,
                ),
            ),
        ]
    )
    pipeline.fit(matrix)
    detector = AnomalyDetector(
        pipeline=pipeline, threshold=0.0, feature_columns=columns, config=config
    )
    scores = detector.score(train)
    detector.threshold = (
        float(np.quantile(scores, config.alert_quantile))
        if config.alert_quantile is not None
        else _choose_threshold(scores, labels, config.fallback_alert_quantile)
    )
    return detector


def _choose_threshold(scores: np.ndarray, labels: np.ndarray, fallback_quantile: float) -> float:
    if labels.sum() == 0 or labels.sum() == len(labels):
        return float(np.quantile(scores, fallback_quantile))
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.where(
        precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0
    )
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best])


def evaluate_detector(detector: AnomalyDetector, frame: pd.DataFrame) -> dict[str, float]:
    """Precision, recall, F1 at the detector's threshold, PR-AUC (average precision), and the
    false-alarm rate (alerts among normal rows), which stays meaningful on a day without anomalies."""
    if frame.empty:
        raise ValueError("cannot evaluate on an empty frame")
    scores = detector.score(frame)
    predicted = (scores >= detector.threshold).astype("int8")
    labels = (
        frame[LABEL].to_numpy().astype("int8") if LABEL in frame else np.zeros(len(frame), "int8")
    )
    has_positives = bool(labels.any())
    return {
        "precision": float(precision_score(labels, predicted, zero_division=0.0)),
        "recall": float(recall_score(labels, predicted, zero_division=0.0)),
        "f1": float(f1_score(labels, predicted, zero_division=0.0)),
        "pr_auc": float(average_precision_score(labels, scores)) if has_positives else 0.0,
        "alert_rate": float(predicted.mean()),
        "false_alarm_rate": float(predicted[labels == 0].mean()) if (labels == 0).any() else 0.0,
        "positive_rate": float(labels.mean()),
        "rows": float(len(frame)),
    }


SCORE = "score"
ALERT = "alert"


def score_frame(detector: AnomalyDetector, features: pd.DataFrame) -> pd.DataFrame:
    """The detector's output per row: anomaly score, alert at its threshold, and the label if known.

    This is what prediction-drift checks watch: a detector whose score distribution moves is
    seeing a different world than the one it was calibrated on, labels or not.
    """
    scores = detector.score(features)
    frame = pd.DataFrame(
        {
            TIMESTAMP: features[TIMESTAMP].to_numpy(),
            SERVICE: features[SERVICE].to_numpy(),
            SCORE: scores,
            ALERT: (scores >= detector.threshold).astype("int8"),
        }
    )
    if LABEL in features:
        frame[LABEL] = features[LABEL].to_numpy().astype("int8")
    return frame.sort_values([TIMESTAMP, SERVICE], kind="mergesort").reset_index(drop=True)
