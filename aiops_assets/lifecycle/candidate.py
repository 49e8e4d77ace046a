"""The candidate asset: one training of the host's model, registered as a version with its capsule.

Each materialization trains on the training set as the store keeps it (canonical Parquet, so a
re-run reads the same bytes), stores the fitted model in its format, and registers the bytes'
hash with the holdout metrics, the format and the capsule a re-run needs. The version becomes
the challenger; only the champion asset can make it serve.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.audit_head import observe_audit_head
from aiops_assets.capsules import package_version, record_capsule
from aiops_assets.core.capsule import build_capsule
from aiops_assets.core.experiments import ExperimentRun
from aiops_assets.core.policy import identify
from aiops_assets.core.registry import CHALLENGER, artifact_tags
from aiops_assets.core.store import ArtifactStore
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
        registry = ledger.get_ledger()
        actor = identify(
            registry,
            action="register",
            subject=model_name,
            tags=context.run.tags,
            run_id=context.run.run_id,
        )
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
        capsule_metadata = record_capsule(registry, store, capsule)
        version = registry.register_model_version(
            model_name,
            ref.sha256,
            metrics=metrics,
            training_set_version=training_sha,
            feature_set_version="",
            actor=actor,
            capsule_ref=capsule.capsule_id,
            run_id=context.run.run_id,
            tags={**artifact_tags(ref), **recorded_tags(model)},
        )
        registry.record_experiment_run(
            ExperimentRun(
                run_id=context.run.run_id,
                model_name=model_name,
                model_version=version.version,
                capsule_id=capsule.capsule_id,
                at=capsule.created_at or datetime.now(UTC),
                config=dict(capsule.config),
                metrics=dict(metrics),
                tags={k: v for k, v in context.run.tags.items() if not k.startswith("dagster/")},
                dataset_version=training_sha,
            )
        )
        current = registry.get_alias(model_name, CHALLENGER)
        if current is None or current.version != version.version:
            registry.set_alias(
                model_name,
                CHALLENGER,
                version.version,
                actor=actor,
                reason=f"trained in run {context.run.run_id}",
                run_id=context.run.run_id,
            )
        observe_audit_head(context, registry)
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **float_metrics(metrics),
                **capsule_metadata,
                "model_version": dg.MetadataValue.int(version.version),
                "model_format": dg.MetadataValue.text(model.format.name),
                "training_set_sha256": dg.MetadataValue.text(training_sha),
            },
        )

    return candidate
