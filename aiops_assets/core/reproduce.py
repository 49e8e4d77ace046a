"""Re-run a model's training from its capsule and check, byte for byte, that it gives the same result.

A recorded hash proves what was produced; only re-running proves it can be produced again. The
re-run starts from the capsule alone: the snapshots it names (by SHA-256, from the store), the
feature spec, configs and seeds it recorded, and the code paths the assets use
(``compute_features``, ``assemble_training_set``, ``train_detector``). The chain is re-run link
by link (snapshots -> each feature day -> training set -> model) and each link's hash compared,
so a mismatch says where the chain first diverged. It runs in a fresh interpreter
(``run_in_fresh_process``) so that nothing cached in the calling process (a loaded model, a
warmed-up library, a changed global seed) can make a result look reproducible when it is not.

Usage of the worker (what ``aiops reproduce`` and the ``reproducible`` check call)::

    python -m aiops_assets.core.reproduce --capsule capsule.json --store .aiops/store
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aiops_assets.core import estimators, pyfunc_models
from aiops_assets.core.capsule import Capsule, capture_environment, diff_environments
from aiops_assets.core.features import FeatureSetSpec, compute_features
from aiops_assets.core.model_codec import SKOPS_FORMAT, dump_detector, dump_model, load_model_bytes
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    DetectorConfig,
    TrainingSetConfig,
    assemble_training_set,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.pyfunc_models import PYFUNC_KIND
from aiops_assets.core.store import (
    ArtifactNotFoundError,
    ArtifactStore,
    StoreError,
    canonical_parquet_bytes,
    frame_from_parquet_bytes,
)

MODEL_KIND = "model"
TRAINING_SET = "training_set"
CANDIDATE_MODEL = "candidate_model"
FEATURES_PREFIX = "features["
# Metrics are recomputed from identical bytes, so they should agree exactly; the tolerance only
# absorbs the last bit of floating-point summation order across BLAS builds.
DEFAULT_METRIC_TOLERANCE = 1e-9


class ReproductionError(Exception):
    """The capsule cannot be re-run at all (wrong kind, malformed); not a mismatch."""


@dataclass(frozen=True)
class Comparison:
    """One recorded outcome against the re-run's."""

    name: str
    recorded: Any
    reproduced: Any
    ok: bool


@dataclass
class Reproduction:
    """What the re-run produced, and whether every recorded outcome was reproduced."""

    capsule_id: str
    comparisons: list[Comparison] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(item.ok for item in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "capsule_id": self.capsule_id,
            "ok": self.ok,
            "comparisons": [asdict(item) for item in self.comparisons],
            "problems": list(self.problems),
            "environment": list(self.environment),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reproduction:
        return cls(
            capsule_id=str(data["capsule_id"]),
            comparisons=[Comparison(**item) for item in data.get("comparisons", [])],
            problems=[str(item) for item in data.get("problems", [])],
            environment=[str(item) for item in data.get("environment", [])],
            seconds=float(data.get("seconds", 0.0)),
        )

    def lines(self) -> list[str]:
        """A report a person can read: verdict, each outcome, each environment difference."""
        verdict = "REPRODUCED" if self.ok else "NOT REPRODUCED"
        lines = [f"capsule {self.capsule_id[:12]}: {verdict} in {self.seconds:.1f}s"]
        lines += [f"  problem: {problem}" for problem in self.problems]
        for item in self.comparisons:
            mark = "ok " if item.ok else "DIFF"
            if item.ok:
                lines.append(f"  {mark} {item.name}: {_short(item.recorded)}")
            else:
                lines.append(
                    f"  {mark} {item.name}: recorded {_short(item.recorded)}, "
                    f"re-run {_short(item.reproduced)}"
                )
        if self.environment:
            lines.append("  environment differences since the capsule was recorded:")
            lines += [f"    {line}" for line in self.environment]
        else:
            lines.append("  environment: identical to the recorded one")
        return lines


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def reproduce_capsule(
    capsule: Capsule,
    store: ArtifactStore,
    *,
    metric_tolerance: float = DEFAULT_METRIC_TOLERANCE,
    current_environment: Mapping[str, Any] | None = None,
) -> Reproduction:
    """Any model capsule: a lifecycle model's (a host's estimator) or the reference detector's."""
    if capsule.kind == MODEL_KIND and estimators.RECIPE_KEY in capsule.config:
        return reproduce_lifecycle_capsule(
            capsule,
            store,
            metric_tolerance=metric_tolerance,
            current_environment=current_environment,
        )
    return reproduce_model_capsule(
        capsule, store, metric_tolerance=metric_tolerance, current_environment=current_environment
    )


def reproduce_lifecycle_capsule(
    capsule: Capsule,
    store: ArtifactStore,
    *,
    metric_tolerance: float = DEFAULT_METRIC_TOLERANCE,
    current_environment: Mapping[str, Any] | None = None,
) -> Reproduction:
    """Re-train a host's estimator from its capsule alone: the training set and the unfitted
    estimator by hash from the store, the recipe (columns, split, threshold) from the config.

    Training and measuring go through ``core.estimators``, the code the candidate asset ran, so
    equal bytes mean the same training and not a second implementation that agrees.
    """
    started = time.perf_counter()
    result = Reproduction(capsule_id=capsule.capsule_id)
    environment = (
        capture_environment() if current_environment is None else dict(current_environment)
    )
    result.environment = diff_environments(capsule.environment, environment).lines()
    recipe_config = capsule.config[estimators.RECIPE_KEY]
    try:
        recipe = estimators.EstimatorRecipe.from_dict(recipe_config["recipe"])
        training_sha = capsule.inputs[TRAINING_SET]
        recorded_model = capsule.outputs[capsule.asset]
    except KeyError as error:
        raise _not_a_lifecycle_capsule(capsule, error) from error
    result.problems += _stored_output_problems(capsule, store)
    try:
        retrain = _retrainer(capsule, store, recipe_config, recipe)
        frame = store.get_frame(training_sha)
    except (StoreError, ValueError) as error:
        result.problems.append(f"the capsule's inputs cannot be read: {error}")
        result.seconds = time.perf_counter() - started
        return result
    result.comparisons.append(
        _same(
            "training_set sha256",
            capsule.outputs.get(TRAINING_SET),
            hashlib.sha256(canonical_parquet_bytes(frame)).hexdigest(),
        )
    )
    model_bytes, metrics = retrain(frame)
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    result.comparisons.append(_same("model sha256", recorded_model, model_sha))
    result.comparisons += _metric_comparisons(capsule.metrics, metrics, metric_tolerance)
    result.seconds = time.perf_counter() - started
    return result


Retrain = Callable[[pd.DataFrame], tuple[bytes, dict[str, float]]]


def _retrainer(
    capsule: Capsule,
    store: ArtifactStore,
    recipe_config: Mapping[str, Any],
    recipe: estimators.EstimatorRecipe,
) -> Retrain:
    """How this capsule's model is trained again: the unfitted scikit-learn estimator from the
    store (loaded with the trusted types the host declared when it trained, as the capsule
    recorded), or the host's pyfunc trainer imported by the path the capsule recorded."""
    kind, model_format = recipe_config.get("kind"), recipe_config.get("format")
    if kind == PYFUNC_KIND:
        try:
            trainer = pyfunc_models.import_trainer(str(recipe_config["trainer"]))
        except KeyError as error:
            raise _not_a_lifecycle_capsule(capsule, error) from error
        except pyfunc_models.TrainerNotImportable as error:
            raise ReproductionError(str(error)) from error
        save_options = recipe_config.get("save_options") or None

        def retrain_pyfunc(frame: pd.DataFrame) -> tuple[bytes, dict[str, float]]:
            training = pyfunc_models.train_and_evaluate(
                trainer, recipe, frame, save_options=save_options
            )
            return training.data, training.metrics

        return retrain_pyfunc
    if kind != "sklearn" or model_format != SKOPS_FORMAT:
        raise ReproductionError(
            f"capsule {capsule.capsule_id[:12]} records a {kind!r} model in {model_format!r}; "
            "only scikit-learn models stored with skops and MLflow pyfunc models can be "
            "re-trained from a capsule alone"
        )
    try:
        estimator_sha = capsule.inputs[estimators.ESTIMATOR_INPUT]
    except KeyError as error:
        raise _not_a_lifecycle_capsule(capsule, error) from error
    estimator = load_model_bytes(
        store.get_bytes(estimator_sha), tuple(recipe_config.get("trusted_types") or ())
    )

    def retrain_sklearn(frame: pd.DataFrame) -> tuple[bytes, dict[str, float]]:
        model, metrics = estimators.train_and_evaluate(estimator, recipe, frame)
        return dump_model(model), metrics

    return retrain_sklearn


def _not_a_lifecycle_capsule(capsule: Capsule, missing: KeyError) -> ReproductionError:
    return ReproductionError(
        f"capsule {capsule.capsule_id[:12]} lacks {missing}; it was not written by a "
        "lifecycle candidate asset"
    )


def _metric_comparisons(
    recorded: Mapping[str, float], reproduced: Mapping[str, float], tolerance: float
) -> list[Comparison]:
    comparisons = []
    for name, value in sorted(recorded.items()):
        again = reproduced.get(name)
        close = again is not None and math.isclose(
            float(value), float(again), rel_tol=0.0, abs_tol=tolerance
        )
        comparisons.append(Comparison(f"metric {name}", value, again, close))
    return comparisons


def reproduce_model_capsule(
    capsule: Capsule,
    store: ArtifactStore,
    *,
    metric_tolerance: float = DEFAULT_METRIC_TOLERANCE,
    current_environment: Mapping[str, Any] | None = None,
) -> Reproduction:
    """Rebuild the training set from the capsule's feature partitions, retrain, and compare."""
    started = time.perf_counter()
    if capsule.kind != MODEL_KIND:
        raise ReproductionError(
            f"capsule {capsule.capsule_id[:12]} records a {capsule.kind!r} step; "
            f"only {MODEL_KIND!r} capsules (a trained model) can be reproduced"
        )
    result = Reproduction(capsule_id=capsule.capsule_id)
    environment = (
        capture_environment() if current_environment is None else dict(current_environment)
    )
    result.environment = diff_environments(capsule.environment, environment).lines()
    try:
        training_config = capsule.config[TRAINING_SET]
        model_config = capsule.config[CANDIDATE_MODEL]
        outputs = capsule.outputs
    except KeyError as error:
        raise ReproductionError(
            f"capsule {capsule.capsule_id[:12]} lacks {error}; it was not written by candidate_model"
        ) from error

    features = {}
    features_config = capsule.config.get("features") or {}
    for name, digest in sorted(capsule.inputs.items()):
        if not name.startswith(FEATURES_PREFIX):
            continue
        partition = name[len(FEATURES_PREFIX) : -1]
        try:
            if partition in features_config:
                features[partition] = _recompute_features(
                    capsule, store, partition, features_config[partition], digest, result
                )
            else:
                features[partition] = store.get_frame(digest)
        except StoreError as error:
            result.problems.append(f"{name} cannot be rebuilt: {error}")
    if result.problems or not features:
        if not features and not result.problems:
            result.problems.append("the capsule names no feature partitions to train from")
        result.seconds = time.perf_counter() - started
        return result
    # A damaged stored output does not stop the re-run: its comparisons still say whether the
    # training itself is reproducible.
    result.problems += _stored_output_problems(capsule, store)

    frame = assemble_training_set(
        features,
        TrainingSetConfig(
            holdout_days=int(training_config["holdout_days"]),
            max_train_rows=int(training_config["max_train_rows"]),
            seed=int(training_config["seed"]),
        ),
    )
    training_bytes = canonical_parquet_bytes(frame)
    training_sha = hashlib.sha256(training_bytes).hexdigest()
    result.comparisons.append(_same("training_set sha256", outputs.get(TRAINING_SET), training_sha))
    # candidate_model trains on the training set as read back from the store: do the same.
    frame = frame_from_parquet_bytes(training_bytes)

    alert_quantile = model_config.get("alert_quantile") or None
    detector = train_detector(
        frame,
        DetectorConfig(
            n_estimators=int(model_config["n_estimators"]),
            max_samples=int(model_config["max_samples"]),
            seed=int(model_config["seed"]),
            alert_quantile=None if alert_quantile is None else float(alert_quantile),
        ),
    )
    # The same encoding candidate_model stores, so equal models give equal hashes.
    model_sha = hashlib.sha256(dump_detector(detector)).hexdigest()
    result.comparisons.append(_same("model sha256", outputs.get(CANDIDATE_MODEL), model_sha))
    metrics = evaluate_detector(detector, frame[frame[SPLIT] == HOLDOUT])
    result.comparisons += _metric_comparisons(capsule.metrics, metrics, metric_tolerance)
    result.seconds = time.perf_counter() - started
    return result


def _stored_output_problems(capsule: Capsule, store: ArtifactStore) -> list[str]:
    """Each recorded output must still be in the store with bytes that hash to its id.

    A re-run that matches the recorded hashes says the training *can* be repeated; it says
    nothing about the bytes the registry actually serves. A corrupt or deleted champion is
    therefore a problem of its own, named by output and object, whatever the re-run gives.
    """
    problems = []
    for name, digest in sorted(capsule.outputs.items()):
        try:
            store.get_bytes(str(digest))
        except ArtifactNotFoundError:
            problems.append(f"stored {name} object {digest} is missing from {store.root}")
        except StoreError as error:
            problems.append(f"stored {name} object {digest} does not verify: {error}")
    return problems


def _recompute_features(
    capsule: Capsule,
    store: ArtifactStore,
    partition: str,
    recipe: Mapping[str, Any],
    recorded_sha: str,
    result: Reproduction,
) -> pd.DataFrame:
    """Features of one day from the snapshots the capsule names, compared with the recorded ones.

    Returned as read back from canonical Parquet, exactly as the training set read them.
    """
    frames = []
    for key in sorted(recipe["history"]):
        name = f"telemetry_snapshot[{key}]"
        digest = capsule.inputs.get(name)
        if digest is None:
            raise StoreError(f"the capsule names no data version for {name}")
        frames.append(store.get_frame(digest))
    start, end = (pd.Timestamp(value) for value in recipe["window"])
    frame = compute_features(
        pd.concat(frames, ignore_index=True),
        FeatureSetSpec.from_dict(dict(recipe["spec"])),
        output_start=start,
        output_end=end,
    )
    data = canonical_parquet_bytes(frame)
    result.comparisons.append(
        _same(f"features[{partition}] sha256", recorded_sha, hashlib.sha256(data).hexdigest())
    )
    return frame_from_parquet_bytes(data)


def _same(name: str, recorded: Any, reproduced: Any) -> Comparison:
    return Comparison(name, recorded, reproduced, recorded == reproduced)


def run_in_fresh_process(
    capsule: Capsule, store_root: str, *, timeout: float = 1800.0
) -> Reproduction:
    """``reproduce_capsule`` in a new interpreter; its report comes back as JSON."""
    with tempfile.TemporaryDirectory(prefix="aiops-reproduce-") as folder:
        capsule_file = Path(folder) / "capsule.json"
        capsule_file.write_text(capsule.to_json(), encoding="utf-8")
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "aiops_assets.core.reproduce",
                "--capsule",
                str(capsule_file),
                "--store",
                store_root,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_importing_as_the_caller(),
        )
    if completed.returncode not in (0, 1):
        raise ReproductionError(
            f"the re-run of capsule {capsule.capsule_id[:12]} crashed "
            f"(exit {completed.returncode}): {completed.stderr.strip()[-2000:]}"
        )
    return Reproduction.from_dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def _importing_as_the_caller() -> dict[str, str]:
    """The environment, with the caller's import path: a host's capsule names its own code (a
    pyfunc trainer), which the re-run must import as the code location that trained it did.
    Modules are imported afresh; only where they are found is shared."""
    folders = [entry for entry in sys.path if entry and Path(entry).is_dir()]
    inherited = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*folders, *([inherited] if inherited else [])]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiops_assets.core.reproduce",
        description="Re-run a model capsule and print the comparison as one JSON line.",
    )
    parser.add_argument("--capsule", required=True, help="the capsule JSON file")
    parser.add_argument("--store", required=True, help="the artifact store root")
    args = parser.parse_args(argv)
    capsule = Capsule.from_json(Path(args.capsule).read_text(encoding="utf-8"))
    try:
        reproduction = reproduce_capsule(capsule, ArtifactStore(args.store))
    except ReproductionError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(json.dumps(reproduction.to_dict(), sort_keys=True, default=str))
    return 0 if reproduction.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
