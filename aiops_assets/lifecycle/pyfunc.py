"""An MLflow pyfunc model as a lifecycle model: for hosts whose models already are MLflow models.

The host keeps its own training code (a function from the train split to a
``mlflow.pyfunc.PythonModel`` or a saved model folder); the lifecycle stores each version as a
deterministic archive (``core.mlflow_format``), records the format in the version's tags and the
capsule, serves it through ``mlflow.pyfunc.load_model`` after the bytes verified against the
ledger, and re-trains it for ``aiops reproduce`` by calling the same function again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiops_assets.core import pyfunc_models
from aiops_assets.core.estimators import EstimatorRecipe
from aiops_assets.core.mlflow_format import MlflowPyfuncFormat
from aiops_assets.core.model_codec import ModelFormat
from aiops_assets.core.store import ArtifactStore
from aiops_assets.lifecycle.models import column_recipe

__all__ = ["PyfuncModel"]


@dataclass(frozen=True)
class PyfuncModel:
    """A host's MLflow pyfunc model, trained by the host's own function.

    Attributes:
        trainer: A module-level function taking the training set's train split (every column)
            and returning a fitted ``mlflow.pyfunc.PythonModel`` or the path of a saved model
            folder. It must train the same way every time (fixed seeds): the version hash is
            the archive's, and ``aiops reproduce`` compares it.
        features: The columns the model's ``predict`` is given, in order.
        label: The 0/1 label column.
        time_column: The column that orders rows in time (the holdout is the latest rows).
        service_column: The column naming a row's service (the slices of a staged rollout).
        threshold: The score from which the model alerts; a score is ``predict``'s value, or
            its last column when it returns class probabilities.
        holdout_fraction: The latest share of rows held out for evaluation and the gate.
        save_options: Passed to ``mlflow.pyfunc.save_model`` (give ``pip_requirements``: MLflow
            otherwise infers them by loading the model in a subprocess, slowly).

    Example:
        >>> model = PyfuncModel(  # doctest: +SKIP
        ...     trainer=my_project.models.train_breach_model,
        ...     features=["latency_ms", "error_rate"],
        ...     label="slo_breach",
        ...     time_column="ts",
        ...     save_options={"pip_requirements": ["scikit-learn"]},
        ... )
    """

    trainer: pyfunc_models.Trainer
    features: Sequence[str]
    label: str
    time_column: str | None = None
    service_column: str | None = None
    threshold: float = 0.5
    holdout_fraction: float = 0.25
    save_options: Mapping[str, Any] | None = None
    _recipe: EstimatorRecipe = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pyfunc_models.trainer_path(self.trainer)  # refused now, not at the first reproduce
        object.__setattr__(self, "_recipe", column_recipe(self))

    @property
    def format(self) -> ModelFormat:
        return MlflowPyfuncFormat(save_options=self.save_options)

    def train(self, frame: pd.DataFrame) -> tuple[Any, dict[str, float]]:
        training = pyfunc_models.train_and_evaluate(
            self.trainer, self._recipe, frame, save_options=self.save_options
        )
        return training.model, training.metrics

    def holdout(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._recipe.split(frame)[1]

    def score(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return pyfunc_models.score(model, self._recipe, frame)

    def threshold_of(self, model: Any) -> float:
        del model
        return self.threshold

    def recipe(self, store: ArtifactStore) -> tuple[dict[str, Any], dict[str, str]]:
        del store  # the trainer is code, found again by its import path
        return pyfunc_models.recipe_config(self.trainer, self._recipe, self.save_options), {}
