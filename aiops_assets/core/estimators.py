"""A host's scikit-learn estimator as a model the lifecycle can train, judge and re-train.

The recipe is everything besides the estimator itself that makes a training repeatable: which
columns are the features and which is the label, how rows are ordered in time, which share of the
latest rows is the holdout, and the alert threshold. The lifecycle's candidate asset and
``aiops reproduce`` both train through :func:`fit` and measure through :func:`evaluate`, so a
re-run that gives the same bytes gives them for the same reason, not by a second implementation
that happens to agree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

# The capsule's config key for a lifecycle model's recipe (``core.reproduce`` dispatches on it)
# and the capsule input naming the unfitted estimator's bytes in the store.
RECIPE_KEY = "lifecycle"
ESTIMATOR_INPUT = "estimator"


@dataclass(frozen=True)
class EstimatorRecipe:
    """How one estimator is fitted and scored; JSON-safe, so a capsule can carry it."""

    features: tuple[str, ...]
    label: str
    time_column: str | None = None
    service_column: str | None = None
    threshold: float = 0.5
    holdout_fraction: float = 0.25
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("an estimator recipe needs at least one feature column")
        if self.label in self.features:
            raise ValueError(f"the label {self.label!r} cannot also be a feature")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in (0, 1), got {self.holdout_fraction}")
        object.__setattr__(self, "features", tuple(self.features))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EstimatorRecipe:
        return cls(
            features=tuple(str(name) for name in data["features"]),
            label=str(data["label"]),
            time_column=data.get("time_column"),
            service_column=data.get("service_column"),
            threshold=float(data.get("threshold", 0.5)),
            holdout_fraction=float(data.get("holdout_fraction", 0.25)),
            extra=dict(data.get("extra") or {}),
        )

    def ordered(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows in time order (stable), so the holdout is the future and blocks are contiguous."""
        missing = [name for name in (*self.features, self.label) if name not in frame.columns]
        if missing:
            raise ValueError(f"the training set lacks the columns {missing}")
        keys = [name for name in (self.time_column, self.service_column) if name]
        if not keys:
            return frame.reset_index(drop=True)
        return frame.sort_values(keys, kind="mergesort", ignore_index=True)

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Train and holdout: the latest ``holdout_fraction`` of the rows is never trained on.

        With a time column the cut falls between two timestamps, never inside one, so no
        instant is half in the past and half in the future.
        """
        ordered = self.ordered(frame)
        cut = round(len(ordered) * (1.0 - self.holdout_fraction))
        if self.time_column and 0 < cut < len(ordered):
            times = ordered[self.time_column]
            cut = int(np.searchsorted(times.to_numpy(), times.iloc[cut], side="left"))
        train, holdout = ordered.iloc[:cut], ordered.iloc[cut:]
        if train.empty or holdout.empty:
            raise ValueError(
                f"{len(ordered)} rows give an empty train or holdout split "
                f"(holdout_fraction {self.holdout_fraction})"
            )
        return train.reset_index(drop=True), holdout.reset_index(drop=True)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[list(self.features)].to_numpy(dtype="float64", na_value=np.nan)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.label].to_numpy().astype("int8")


def fit(estimator: Any, recipe: EstimatorRecipe, train: pd.DataFrame) -> Any:
    """A fitted copy of ``estimator``: the host's object is never fitted in place, so the
    same unfitted estimator trains every version."""
    model = copy.deepcopy(estimator)
    model.fit(recipe.matrix(train), recipe.labels(train))
    return model


def score(model: Any, recipe: EstimatorRecipe, frame: pd.DataFrame) -> np.ndarray:
    """Higher means more likely positive: the positive class's probability, else the decision
    function, else the prediction itself."""
    matrix = recipe.matrix(frame)
    if hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(matrix), dtype="float64")
        return probabilities[:, -1] if probabilities.ndim == 2 else probabilities
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(matrix), dtype="float64")
    return np.asarray(model.predict(matrix), dtype="float64")


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """The metrics the registry keeps for a version, named as the detector's are, so the gate,
    the performance check and the rollout read every model's numbers the same way."""
    if len(labels) == 0:
        raise ValueError("cannot evaluate on no rows")
    labels = np.asarray(labels).astype("int8")
    predicted = (np.asarray(scores) >= threshold).astype("int8")
    normal = labels == 0
    return {
        "precision": float(precision_score(labels, predicted, zero_division=0.0)),
        "recall": float(recall_score(labels, predicted, zero_division=0.0)),
        "f1": float(f1_score(labels, predicted, zero_division=0.0)),
        "pr_auc": float(average_precision_score(labels, scores)) if labels.any() else 0.0,
        "alert_rate": float(predicted.mean()),
        "false_alarm_rate": float(predicted[normal].mean()) if normal.any() else 0.0,
        "positive_rate": float(labels.mean()),
        "rows": float(len(labels)),
    }


def train_and_evaluate(
    estimator: Any, recipe: EstimatorRecipe, frame: pd.DataFrame
) -> tuple[Any, dict[str, float]]:
    """Fit on the train split, measure on the holdout: one training, as the asset and a re-run
    both do it."""
    train, holdout = recipe.split(frame)
    model = fit(estimator, recipe, train)
    return model, evaluate(recipe.labels(holdout), score(model, recipe, holdout), recipe.threshold)


def required_columns(recipe: EstimatorRecipe, frame_columns: Sequence[str]) -> list[str]:
    """The recipe's columns the frame lacks (features and label)."""
    return [name for name in (*recipe.features, recipe.label) if name not in frame_columns]
