"""The candidate asset: one training of the host's model, registered as a version with its capsule.

Each materialization trains on the training set as the store keeps it (canonical Parquet, so a
re-run reads the same bytes), stores the fitted model in its format, and registers the bytes'
hash with the holdout metrics, the format and the capsule a re-run needs. The version becomes
the challenger; only the champion asset can make it serve.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.audit_head import observe_audit_head
from aiops_assets.capsules import capsule_metadata, package_version
from aiops_assets.core.capsule import Capsule, build_capsule
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.policy import identify
from aiops_assets.core.registration import Training, register_training
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.lifecycle.models import RECIPE_KEY, LifecycleModel, recorded_tags
from aiops_assets.metadata import artifact_metadata, float_metrics, versioned_output
from aiops_assets.resources import ArtifactStoreResource, LedgerResource

TRAINING_SET_INPUT = "training_set"


def as_frame(value: Any) -> pd.DataFrame:
    """The training set's value as one frame: a multi-partition input (a dict by partition key)
    is concatenated in key order."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, dict) and all(isinstance(item, pd.DataFrame) for item in value.values()):
        if not value:
            raise dg.Failure(description="the training set has no partitions to train on")
        return pd.concat([value[key] for key in sorted(value)], ignore_index=True)
    raise dg.Failure(
        description=f"the training set must be a pandas DataFrame, not {type(value).__name__}"
    )


def stored_training_set(store: ArtifactStore, value: Any) -> tuple[str, pd.DataFrame]:
    """The training set's data version, and the frame as a re-run will read it back."""
    ref = store.put_frame(as_frame(value))
    return ref.sha256, store.get_frame(ref)


def register_candidate(
    context: dg.AssetExecutionContext,
    ledger: Ledger,
    store: ArtifactStore,
    *,
    model_name: str,
    model: ArtifactRef,
    capsule: Capsule,
    metrics: Mapping[str, float],
    training_set_version: str,
    feature_set_version: str = "",
    tags: Mapping[str, str] | None = None,
    hypothesis: str = "",
    success_criterion: str = "",
) -> tuple[ModelVersion, dict[str, dg.MetadataValue]]:
    """Register a model a training asset stored: a version, its capsule, the challenger alias.

    For a host that writes its own training asset (``build_model_lifecycle`` does this for a
    ``LifecycleModel``): the version is registered by the run's acting identity with the
    artifact's hash, metrics and tags; the capsule is recorded (``aiops reproduce`` re-runs it);
    the run goes into the experiment ledger with its own tags (not Dagster's); the version
    becomes the challenger, which only the champion asset can make serve; and the audit head
    the run leaves is observed in the event log. A re-run of the same training registers no
    second version. The same function (``core.registration``) registers the Airflow tasks'.

    Args:
        context: The training asset's execution context (run id, tags, event log).
        ledger: The registry (``LedgerResource.get_ledger()``).
        store: The artifact store holding ``model`` (``ArtifactStoreResource.get_store()``).
        model_name: The registered model's name.
        model: The stored model's ref (its hash is the version's identity).
        capsule: What re-creates the model (``core.capsule.build_capsule``).
        metrics: The holdout metrics the gate and the performance check compare.
        training_set_version: The data version of the training set.
        feature_set_version: The feature-set version the model was trained on, if any.
        tags: More tags for the version (after the artifact's media type and size).
        hypothesis: What the run set out to show, declared before it ran.
        success_criterion: When it did (``pr_auc>=0.95, false_alarm_rate<0.02``).

    Returns:
        The registered version and the metadata linking the materialization to its capsule.

    Example:
        >>> version, links = register_candidate(  # doctest: +SKIP
        ...     context, ledger.get_ledger(), store, model_name="churn", model=ref,
        ...     capsule=capsule, metrics=metrics, training_set_version=training.sha256,
        ... )
    """
    actor = identify(
        ledger,
        action="register",
        subject=model_name,
        tags=context.run.tags,
        run_id=context.run.run_id,
    )
    registered = register_training(
        ledger,
        store,
        Training(
            model_name=model_name,
            model=model,
            capsule=capsule,
            metrics=metrics,
            training_set_version=training_set_version,
            actor=actor,
            run_id=context.run.run_id,
            feature_set_version=feature_set_version,
            tags=tags,
            run_tags={k: v for k, v in context.run.tags.items() if not k.startswith("dagster/")},
            hypothesis=hypothesis,
            success_criterion=success_criterion,
        ),
    )
    observe_audit_head(context, ledger)
    return registered.version, capsule_metadata(registered.capsule_facts)


def build_candidate_asset(
    *,
    name: str,
    model_name: str,
    training_set: dg.AssetKey,
    model: LifecycleModel,
    group_name: str,
    code_version: str,
) -> dg.AssetsDefinition:
    """The asset that trains ``model`` on ``training_set`` and registers the version."""

    @dg.asset(
        name=name,
        code_version=code_version,
        io_manager_key="artifact_io_manager",
        group_name=group_name,
        ins={TRAINING_SET_INPUT: dg.AssetIn(key=training_set)},
        description=(
            f"One training of {model_name} on {training_set.to_user_string()}, stored as "
            f"{model.format.name} and registered in the ledger as the challenger with its "
            "holdout metrics and capsule."
        ),
    )
    def candidate(
        context: dg.AssetExecutionContext,
        artifact_store: ArtifactStoreResource,
        ledger: LedgerResource,
        training_set: Any,
    ) -> dg.Output[Any]:
        store = artifact_store.get_store()
        training_sha, frame = stored_training_set(store, training_set)
        fitted, metrics = model.train(frame)
        ref = store.put_bytes(model.format.dump(fitted), model.format.media_type)
        recipe, recipe_inputs = model.recipe(store)
        capsule = build_capsule(
            kind="model",
            asset=name,
            run_id=context.run.run_id,
            seeds={},
            config={RECIPE_KEY: recipe},
            inputs={TRAINING_SET_INPUT: training_sha, **recipe_inputs},
            code_versions={name: code_version, "aiops_assets": package_version()},
            outputs={TRAINING_SET_INPUT: training_sha, name: ref.sha256},
            metrics=metrics,
        )
        version, capsule_links = register_candidate(
            context,
            ledger.get_ledger(),
            store,
            model_name=model_name,
            model=ref,
            capsule=capsule,
            metrics=metrics,
            training_set_version=training_sha,
            tags=recorded_tags(model),
        )
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **float_metrics(metrics),
                **capsule_links,
                "model_version": dg.MetadataValue.int(version.version),
                "model_format": dg.MetadataValue.text(model.format.name),
                "training_set_sha256": dg.MetadataValue.text(training_sha),
            },
        )

    return candidate
