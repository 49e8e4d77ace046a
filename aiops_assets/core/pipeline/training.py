"""From feature days to a registered candidate: the training set, the model and their capsules.

Both orchestrators build their capsules here: the reference ``reference/assets/models.py`` and the
Airflow tasks (configs with the same fields and defaults, so the same capsule layout), and both
register through ``core.registration``, so an orchestrator other than Dagster trains the same
bytes and leaves the same registry facts behind; ``aiops reproduce`` re-runs either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiops_assets.core.capsule import Capsule, build_capsule
from aiops_assets.core.features import LABEL, TIMESTAMP
from aiops_assets.core.models import AnomalyDetector
from aiops_assets.core.pipeline.features import FEATURES_CODE_VERSION
from aiops_assets.core.promotion import ScoredRows, paired_rows
from aiops_assets.core.registration import package_version

# The code versions of the reference assets (``reference/assets/models.py`` imports them) and of
# the Airflow tasks alike: a code version names the computation, and the computation is the same
# whoever schedules it. Bump one only when that computation changes.
TRAINING_SET_CODE_VERSION = "training_set-2"
# -3: stored with skops instead of pickle, so the same training gives new bytes.
CANDIDATE_MODEL_CODE_VERSION = "candidate_model-3"
CHAMPION_MODEL_CODE_VERSION = "champion_model-2"


@dataclass(frozen=True)
class TrainingSetSettings:
    """``TrainingSetRunConfig``'s fields in its order: its dump is the capsule's config."""

    holdout_days: int = 4
    max_train_rows: int = 200_000
    seed: int = 17
    until: str = ""


@dataclass(frozen=True)
class CandidateSettings:
    """``CandidateModelConfig``'s fields in its order."""

    n_estimators: int = 200
    max_samples: int = 512
    seed: int = 7
    alert_quantile: float = 0.0
    hypothesis: str = ""
    success_criterion: str = ""


def settings_hash(settings: TrainingSetSettings | CandidateSettings) -> str:
    """What ``metadata.config_hash`` gives the Dagster config with the same values."""
    canonical = json.dumps(asdict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def features_capsule_parts(
    feature_facts: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, str], dict[str, Any]]:
    """The inputs (feature and snapshot data versions) and the feature config of a training set.

    ``feature_facts`` holds, per feature day, its ``sha256``, ``history_snapshots`` and
    ``feature_spec`` (``DayFeatures.facts``): with them a re-run starts from the snapshots.
    """
    inputs: dict[str, str] = {}
    features_config: dict[str, Any] = {}
    for key in sorted(feature_facts):
        facts = feature_facts[key]
        inputs[f"features[{key}]"] = str(facts["sha256"])
        snapshots = facts.get("history_snapshots")
        spec = facts.get("feature_spec")
        if not isinstance(snapshots, dict) or not isinstance(spec, dict):
            continue
        for snapshot_key, sha in snapshots.items():
            inputs[f"telemetry_snapshot[{snapshot_key}]"] = str(sha)
        start = pd.Timestamp(key)
        features_config[key] = {
            "spec": spec,
            "history": sorted(snapshots),
            "window": [start.isoformat(), (start + pd.Timedelta(days=1)).isoformat()],
        }
    return inputs, features_config


def training_set_capsule(
    *,
    run_id: str,
    settings: TrainingSetSettings,
    feature_facts: Mapping[str, Mapping[str, Any]],
    training_set_sha256: str,
) -> Capsule:
    inputs, features_config = features_capsule_parts(feature_facts)
    return build_capsule(
        kind="training_set",
        asset="training_set",
        run_id=run_id,
        seeds={"training_set": settings.seed},
        config={"features": features_config, "training_set": asdict(settings)},
        inputs=inputs,
        code_versions={
            "features": FEATURES_CODE_VERSION,
            "training_set": TRAINING_SET_CODE_VERSION,
            "aiops_assets": package_version(),
        },
        outputs={"training_set": training_set_sha256},
        metrics={},
    )


def model_capsule(
    *,
    run_id: str,
    parent: Capsule | None,
    settings: CandidateSettings,
    training_set_sha256: str,
    model_sha256: str,
    metrics: Mapping[str, float],
) -> Capsule:
    """The training set's capsule plus this step, so the chain re-runs from the model's alone."""
    return build_capsule(
        kind="model",
        asset="candidate_model",
        run_id=run_id,
        seeds={**(parent.seeds if parent else {}), "candidate_model": settings.seed},
        config={**(parent.config if parent else {}), "candidate_model": asdict(settings)},
        inputs={**(parent.inputs if parent else {}), "training_set": training_set_sha256},
        code_versions={
            **(parent.code_versions if parent else {}),
            "candidate_model": CANDIDATE_MODEL_CODE_VERSION,
            "aiops_assets": package_version(),
        },
        outputs={"training_set": training_set_sha256, "candidate_model": model_sha256},
        metrics=dict(metrics),
        parent=parent.capsule_id if parent else None,
    )


def scored_pair(
    candidate: AnomalyDetector, champion: AnomalyDetector | None, frame: pd.DataFrame
) -> tuple[ScoredRows, ScoredRows] | None:
    """Both detectors on the same rows, in time order (the bootstrap resamples blocks of time).

    The detector's side of the gate's evidence, for the reference ``champion_model`` and the
    Airflow gate task alike; rows without a ``label`` column count as negatives.
    """
    if champion is None or frame.empty:
        return None
    ordered = frame.sort_values([TIMESTAMP], kind="mergesort")
    labels = (
        ordered[LABEL].to_numpy().astype("int8")
        if LABEL in ordered
        else np.zeros(len(ordered), "int8")
    )
    return paired_rows(
        lambda model, rows: model.score(rows),
        lambda model: model.threshold,
        candidate,
        champion,
        ordered,
        labels,
    )
