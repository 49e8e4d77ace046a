"""What the lifecycle needs to know about a host's model: how to train, evaluate and score it.

The lifecycle registers, gates, serves and rolls back whatever satisfies :class:`LifecycleModel`;
:class:`SklearnModel` is the ready one for scikit-learn estimators and pipelines, where naming the
feature and label columns is all the glue there is. A host with another kind of model implements
the protocol (its ``format`` says how the fitted model becomes bytes: ``core.model_codec``'s
``ModelFormat``, where an MLflow pyfunc format plugs in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from aiops_assets.core import estimators
from aiops_assets.core.estimators import ESTIMATOR_INPUT, RECIPE_KEY
from aiops_assets.core.model_codec import SKLEARN_TRUSTED_TYPES, ModelFormat, SkopsFormat
from aiops_assets.core.registry import MODEL_FORMAT_TAG
from aiops_assets.core.store import ArtifactStore

__all__ = ["ESTIMATOR_INPUT", "RECIPE_KEY", "LifecycleModel", "SklearnModel", "recorded_tags"]


@runtime_checkable
class LifecycleModel(Protocol):
    """A host's model as the lifecycle sees it.

    ``train`` fits on the training set's train split and returns the fitted model and its metrics
    on the holdout (``false_alarm_rate`` and ``f1`` are what the performance check compares a
    served day with; ``pr_auc``/``f1``/``precision``/``recall`` what the gate can compare).
    ``holdout`` gives the rows the gate scores both models on, in time order; ``score`` a model's
    scores (higher is more positive) and ``threshold_of`` the score from which it alerts.
    """

    @property
    def format(self) -> ModelFormat: ...

    @property
    def label(self) -> str: ...

    @property
    def time_column(self) -> str | None: ...

    @property
    def service_column(self) -> str | None: ...

    def train(self, frame: pd.DataFrame) -> tuple[Any, dict[str, float]]: ...

    def holdout(self, frame: pd.DataFrame) -> pd.DataFrame: ...

    def score(self, model: Any, frame: pd.DataFrame) -> np.ndarray: ...

    def threshold_of(self, model: Any) -> float: ...

    def recipe(self, store: ArtifactStore) -> tuple[dict[str, Any], dict[str, str]]:
        """The capsule's part: a JSON-safe config and the store objects (name -> sha256) a
        re-run needs, e.g. the unfitted estimator."""
        ...


@dataclass(frozen=True)
class SklearnModel:
    """A scikit-learn estimator or pipeline as a lifecycle model, stored safely with skops.

    The estimator is given unfitted; every version is a fitted copy, trained on the training
    set's earliest rows and measured on the latest ``holdout_fraction`` (by ``time_column``).
    A classifier scores with the positive class's probability and alerts from ``threshold``.

    Attributes:
        estimator: The unfitted estimator or pipeline (give it a ``random_state``: a model that
            trains differently each time cannot be reproduced).
        features: The feature columns, in the order the estimator sees them.
        label: The 0/1 label column.
        time_column: The column that orders rows in time (the holdout is the latest rows).
        service_column: The column naming the service (or host, tenant) of a row: the slices a
            staged rollout moves and the performance check judges one by one.
        threshold: The score from which the model alerts.
        holdout_fraction: The latest share of rows held out for evaluation and the gate.
        trusted_types: Types beyond skops' defaults and the tree ensembles' that loading may
            construct (a custom transformer's dotted name, say).

    Example:
        >>> from sklearn.ensemble import GradientBoostingClassifier  # doctest: +SKIP
        >>> model = SklearnModel(  # doctest: +SKIP
        ...     GradientBoostingClassifier(random_state=0),
        ...     features=["latency_ms", "error_rate"],
        ...     label="slo_breach",
        ...     time_column="ts",
        ...     service_column="service",
        ... )
    """

    estimator: Any
    features: Sequence[str]
    label: str
    time_column: str | None = None
    service_column: str | None = None
    threshold: float = 0.5
    holdout_fraction: float = 0.25
    trusted_types: Sequence[str] = ()
    _recipe: estimators.EstimatorRecipe = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not hasattr(self.estimator, "fit"):
            raise TypeError(f"{type(self.estimator).__name__} has no fit(): not an estimator")
        object.__setattr__(self, "_recipe", column_recipe(self))

    @property
    def format(self) -> ModelFormat:
        return SkopsFormat(trusted_types=(*SKLEARN_TRUSTED_TYPES, *self.trusted_types))

    def train(self, frame: pd.DataFrame) -> tuple[Any, dict[str, float]]:
        return estimators.train_and_evaluate(self.estimator, self._recipe, frame)

    def holdout(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._recipe.split(frame)[1]

    def score(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return estimators.score(model, self._recipe, frame)

    def threshold_of(self, model: Any) -> float:
        del model
        return self.threshold

    def recipe(self, store: ArtifactStore) -> tuple[dict[str, Any], dict[str, str]]:
        unfitted = store.put_bytes(self.format.dump(self.estimator), self.format.media_type)
        config = {
            "kind": "sklearn",
            "format": self.format.name,
            "trusted_types": list(self.format.trusted_types)
            if isinstance(self.format, SkopsFormat)
            else [],
            "estimator_class": f"{type(self.estimator).__module__}.{type(self.estimator).__name__}",
            "recipe": self._recipe.to_dict(),
        }
        return config, {ESTIMATOR_INPUT: unfitted.sha256}


def column_recipe(spec: Any) -> estimators.EstimatorRecipe:
    """The recipe a model spec's column attributes describe (``SklearnModel``'s and
    ``PyfuncModel``'s): one place, so both kinds split, order and threshold rows alike."""
    return estimators.EstimatorRecipe(
        features=tuple(spec.features),
        label=spec.label,
        time_column=spec.time_column,
        service_column=spec.service_column,
        threshold=spec.threshold,
        holdout_fraction=spec.holdout_fraction,
    )


def recorded_tags(model_spec: LifecycleModel) -> Mapping[str, str]:
    """The version tags that say how its bytes were written."""
    return {MODEL_FORMAT_TAG: model_spec.format.name}
