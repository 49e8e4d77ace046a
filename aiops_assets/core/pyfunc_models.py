"""Training, scoring and re-training a host's MLflow pyfunc model from a recipe.

A pyfunc model is not an estimator we can fit: the host's own ``trainer`` function turns the
train split into a model (a ``mlflow.pyfunc.PythonModel`` or a saved model folder). The capsule
records that function by its import path, so ``aiops reproduce`` can call it again on the same
rows. Metrics are measured on the model as stored and loaded back (the bytes that will serve), not
on the in-memory object the trainer returned, so a model whose save loses state fails its gate
instead of serving something the metrics never saw.

The candidate asset (``lifecycle.pyfunc``) and ``core.reproduce`` both go through
:func:`train_and_evaluate`, so equal bytes on a re-run mean the same training.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiops_assets.core import estimators
from aiops_assets.core.estimators import EstimatorRecipe
from aiops_assets.core.mlflow_format import FORMAT_NAME, MlflowPyfuncFormat

PYFUNC_KIND = "pyfunc"
Trainer = Callable[[pd.DataFrame], Any]


class TrainerNotImportable(ValueError):
    """The trainer cannot be found again by its import path, so a capsule could not re-run it."""


def trainer_path(trainer: Trainer) -> str:
    """``module:qualname`` of a module-level function; anything else is refused up front."""
    module = getattr(trainer, "__module__", None)
    qualname = getattr(trainer, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise TrainerNotImportable(
            f"the pyfunc trainer {trainer!r} must be a function defined at module level in an "
            "importable module (not a lambda, a nested function or __main__), so `aiops "
            "reproduce` can call it again"
        )
    return f"{module}:{qualname}"


def import_trainer(path: str) -> Trainer:
    """The function a capsule names, imported as the host's code defines it today."""
    module_name, _, qualname = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise TrainerNotImportable(
            f"cannot import the pyfunc trainer {path}: {error} (run from the host project's "
            "folder, or install it)"
        ) from error
    if not callable(found):
        raise TrainerNotImportable(f"the pyfunc trainer {path} is not callable")
    return found


def score(model: Any, recipe: EstimatorRecipe, frame: pd.DataFrame) -> np.ndarray:
    """The loaded model's ``predict`` on the feature columns; a two-column answer (class
    probabilities) gives the positive class's."""
    predicted = model.predict(frame[list(recipe.features)].reset_index(drop=True))
    values = np.asarray(predicted, dtype="float64")
    if values.ndim == 2:
        values = values[:, -1]
    if len(values) != len(frame):
        raise ValueError(f"the pyfunc model returned {len(values)} scores for {len(frame)} rows")
    return values


@dataclass(frozen=True)
class PyfuncTraining:
    """One training: what the trainer returned, its stored bytes and the holdout metrics."""

    model: Any
    data: bytes
    metrics: dict[str, float]


def train_and_evaluate(
    trainer: Trainer,
    recipe: EstimatorRecipe,
    frame: pd.DataFrame,
    *,
    save_options: Mapping[str, Any] | None = None,
) -> PyfuncTraining:
    """Train on the split's train rows, store, load back, measure on the holdout."""
    train, holdout = recipe.split(frame)
    trained = trainer(train.copy())
    model_format = MlflowPyfuncFormat(save_options=save_options)
    data = model_format.dump(trained)
    loaded = model_format.load(data)
    scores = score(loaded, recipe, holdout)
    metrics = estimators.evaluate(recipe.labels(holdout), scores, recipe.threshold)
    return PyfuncTraining(model=trained, data=data, metrics=metrics)


def recipe_config(
    trainer: Trainer, recipe: EstimatorRecipe, save_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The capsule's part: everything a re-run needs besides the training set."""
    return {
        "kind": PYFUNC_KIND,
        "format": FORMAT_NAME,
        "trainer": trainer_path(trainer),
        "save_options": dict(save_options or {}),
        "recipe": recipe.to_dict(),
    }
