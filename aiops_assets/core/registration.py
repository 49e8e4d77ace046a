"""Registering a trained model: its capsule, its version, its experiment row, the challenger alias.

Every training path ends the same way: a host's lifecycle candidate, the reference
``candidate_model`` and the Airflow candidate task. One function does it, in one order, so the
same training leaves the same ledger facts (and the same audit chain) whichever path or
orchestrator ran it, and the order cannot drift between copies.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiops_assets.core.capsule import Capsule
from aiops_assets.core.experiments import ExperimentRun, criterion_met
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.registry import CHALLENGER, artifact_tags
from aiops_assets.core.store import ArtifactRef, ArtifactStore


def package_version() -> str:
    """The installed ``aiops-assets`` version, as every capsule's code versions record it."""
    try:
        return importlib.metadata.version("aiops-assets")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def record_capsule(ledger: Ledger, store: ArtifactStore, capsule: Capsule) -> dict[str, str]:
    """In the ledger (what ``aiops reproduce`` queries) and in the store (what travels).

    Returns the ``capsule_id``, ``capsule_artifact`` and ``capsule_command`` facts a
    materialization (or an Airflow task's record) links the capsule with.
    """
    capsule_id = ledger.record_capsule(capsule)
    artifact = store.put_json(json.loads(capsule.to_json()))
    return {
        "capsule_id": capsule_id,
        "capsule_artifact": artifact.sha256,
        "capsule_command": f"aiops reproduce {capsule_id[:12]}",
    }


@dataclass(frozen=True)
class Training:
    """One training as the registry keeps it: what was trained from what, and what it scored.

    ``tags`` go onto the version after the artifact's own (media type, size); ``run_tags`` are
    the run's tags the experiment ledger keeps; ``hypothesis`` and ``success_criterion`` were
    declared before the run (the experiment row says whether the criterion was met).
    """

    model_name: str
    model: ArtifactRef
    capsule: Capsule
    metrics: Mapping[str, float]
    training_set_version: str
    actor: str
    run_id: str
    feature_set_version: str = ""
    tags: Mapping[str, str] | None = None
    run_tags: Mapping[str, str] | None = None
    hypothesis: str = ""
    success_criterion: str = ""


@dataclass(frozen=True)
class Registered:
    """The version a training became, and the facts linking it to its capsule."""

    version: ModelVersion
    capsule_facts: dict[str, str]


def register_training(ledger: Ledger, store: ArtifactStore, training: Training) -> Registered:
    """Record the capsule, register the version, log the experiment, make it the challenger.

    The challenger alias moves only when it names another version: a re-run of the same
    training registers no second version and moves nothing.
    """
    capsule_facts = record_capsule(ledger, store, training.capsule)
    version = ledger.register_model_version(
        training.model_name,
        training.model.sha256,
        metrics=training.metrics,
        training_set_version=training.training_set_version,
        feature_set_version=training.feature_set_version,
        actor=training.actor,
        capsule_ref=training.capsule.capsule_id,
        run_id=training.run_id,
        tags={**artifact_tags(training.model), **(training.tags or {})},
    )
    ledger.record_experiment_run(
        ExperimentRun(
            run_id=training.run_id,
            model_name=training.model_name,
            model_version=version.version,
            capsule_id=training.capsule.capsule_id,
            at=training.capsule.created_at or datetime.now(UTC),
            config=dict(training.capsule.config),
            metrics=dict(training.metrics),
            tags=dict(training.run_tags or {}),
            dataset_version=training.training_set_version,
            feature_set_version=training.feature_set_version,
            hypothesis=training.hypothesis,
            success_criterion=training.success_criterion,
            criterion_met=criterion_met(training.success_criterion, training.metrics),
        )
    )
    current = ledger.get_alias(training.model_name, CHALLENGER)
    if current is None or current.version != version.version:
        ledger.set_alias(
            training.model_name,
            CHALLENGER,
            version.version,
            actor=training.actor,
            reason=f"trained in run {training.run_id}",
            run_id=training.run_id,
        )
    return Registered(version=version, capsule_facts=capsule_facts)
