"""Drift baselines and the scores they are compared with.

``drift_baseline`` profiles the first days of ``features`` once; ``score_baseline`` profiles the
champion's scores on its own training data; ``anomaly_scores`` is the champion's output per day.
Drift checks (``checks/drift.py``) compare each new partition with these profiles and never rescan
the reference data.
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from aiops_assets import ArtifactStoreResource, LedgerResource
from aiops_assets.baselines import profile_metadata, store_profile
from aiops_assets.core import models as core_models
from aiops_assets.core.code_fingerprint import FINGERPRINT_KEY, code_fingerprint
from aiops_assets.core.features import TIMESTAMP
from aiops_assets.core.flags import pinned_version
from aiops_assets.core.ledger import Ledger, LedgerError
from aiops_assets.core.models import SCORE, AnomalyDetector, score_frame
from aiops_assets.core.pipeline.baselines import score_profile
from aiops_assets.core.pipeline.scoring import groups_by_version
from aiops_assets.core.registry import MODEL_NAME, load_model
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN, running_rollout, serving_versions
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.core.telemetry import SERVICE
from aiops_assets.metadata import (
    artifact_metadata,
    frame_metadata,
    latest_materialization_metadata,
    versioned_output,
)
from aiops_assets.resources import FeatureFlagsResource

SCORES_CODE_VERSION = "anomaly_scores-3"
SCORE_BASELINE_CODE_VERSION = "score_baseline-1"


def build_anomaly_scores_asset(
    partitions_def: dg.PartitionsDefinition, features_key: dg.AssetKey, champion_key: dg.AssetKey
) -> dg.AssetsDefinition:
    @dg.asset(
        name="anomaly_scores",
        partitions_def=partitions_def,
        code_version=SCORES_CODE_VERSION,
        io_manager_key="artifact_io_manager",
        group_name="aiops",
        kinds={"pandas", "parquet"},
        ins={
            "features": dg.AssetIn(key=features_key),
            "champion_model": dg.AssetIn(key=champion_key),
        },
        description=(
            "The anomaly score and alert for every row of the day, each service scored by the "
            "version serving it: the champion, the new version on a staged rollout's slices, or "
            "a version a feature flag pins (column `model_version`)."
        ),
    )
    def anomaly_scores(
        context: dg.AssetExecutionContext,
        artifact_store: ArtifactStoreResource,
        ledger: LedgerResource,
        feature_flags: FeatureFlagsResource,
        features: dict[str, ArtifactRef],
        champion_model: ArtifactRef,
    ) -> dg.Output[ArtifactRef]:
        store = artifact_store.get_store()
        registry = ledger.get_ledger()
        version = registry.find_version(MODEL_NAME, champion_model.sha256)
        day = store.get_frame(features[context.partition_key])
        services = sorted(str(service) for service in day[SERVICE].unique())
        rollout = running_rollout(registry, MODEL_NAME)
        serving = serving_versions(
            services,
            champion=None if version is None else version.version,
            rollout=rollout,
            pinned=_pinned_versions(feature_flags, services),
        )
        parts = []
        for served, rows in groups_by_version(day, serving, version):
            detector = _detector(store, registry, served, champion_model)
            part = score_frame(detector, rows)
            part[MODEL_VERSION_COLUMN] = 0 if served is None else served
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True).sort_values(
            [TIMESTAMP, SERVICE], kind="mergesort", ignore_index=True
        )
        frame[MODEL_VERSION_COLUMN] = frame[MODEL_VERSION_COLUMN].astype("int64")
        ref = store.put_frame(frame)
        active = rollout.stages[-1] if rollout is not None else None
        if rollout is not None and active is not None:
            context.log.info(
                f"staged rollout {rollout.rollout_id} of v{rollout.to_version}: stage "
                f"{active.name} serves {', '.join(active.services)}"
            )
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **frame_metadata(frame),
                "alert_rate": dg.MetadataValue.float(float(frame["alert"].mean())),
                "mean_score": dg.MetadataValue.float(float(frame[SCORE].mean())),
                "model_sha256": dg.MetadataValue.text(champion_model.sha256),
                FINGERPRINT_KEY: dg.MetadataValue.text(code_fingerprint([core_models])),
                "model_version": dg.MetadataValue.int(0 if version is None else version.version),
                "served_versions": dg.MetadataValue.json(
                    {service: served or 0 for service, served in serving.items()}
                ),
                "rollout_id": dg.MetadataValue.int(0 if rollout is None else rollout.rollout_id),
                "rollout_stage": dg.MetadataValue.text("" if active is None else active.name),
                "rollout_version": dg.MetadataValue.int(
                    0 if rollout is None else rollout.to_version
                ),
                # The active stage's services the rollout's version really scored (a pin wins).
                "rollout_slice": dg.MetadataValue.json(
                    []
                    if rollout is None or active is None
                    else [
                        service
                        for service in active.services
                        if serving.get(service) == rollout.to_version
                    ]
                ),
            },
        )

    return anomaly_scores


def _pinned_versions(flags: FeatureFlagsResource, services: Sequence[str]) -> dict[str, int]:
    """Services a ``model`` flag pins to a version (``v7``); ``champion`` is no pin."""
    chosen = flags.models_for(services, MODEL_NAME)
    return {
        service: number
        for service, value in chosen.items()
        if (number := pinned_version(value)) is not None
    }


def _detector(
    store: ArtifactStore, registry: Ledger, served: int | None, champion_model: ArtifactRef
) -> AnomalyDetector:
    """A model is loaded only as a version the audit chain vouches for, and only after its bytes
    match that version's hash: a ref repointed at a planted object, or a version row whose hash
    was rewritten by SQL, is refused before anything is deserialized."""
    try:
        version = (
            registry.vouched_version(MODEL_NAME, sha256=champion_model.sha256)
            if served is None
            else registry.vouched_version(MODEL_NAME, version=served)
        )
    except LedgerError as error:
        raise dg.Failure(description=str(error)) from error
    if version is None:
        what = f"v{served}" if served is not None else f"object {champion_model.sha256[:12]}"
        raise dg.Failure(
            description=f"refusing to load {MODEL_NAME} {what}: no version the ledger vouches "
            "for has it (a ref repointed around the ledger?); run `aiops audit verify`"
        )
    return load_model(store, version)


@dg.asset(
    code_version=SCORE_BASELINE_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"numpy"},
    description=(
        "Prediction-drift reference: the champion's score distribution (and label rate) on its own "
        "training data, calibrated per training partition."
    ),
)
def score_baseline(
    context: dg.AssetExecutionContext,
    artifact_store: ArtifactStoreResource,
    ledger: LedgerResource,
    champion_model: ArtifactRef,
    training_set: ArtifactRef,
) -> dg.Output[ArtifactRef]:
    store = artifact_store.get_store()
    detector = _detector(store, ledger.get_ledger(), None, champion_model)
    training = store.get_frame(training_set)
    # The same profile the Airflow provider builds (core/pipeline/baselines.py). Calibration
    # needs at least two partitions to measure spread; with a single one the policy's plain
    # floors apply, and the metadata says so (0).
    profile, calibrated_on, scores = score_profile(
        detector, training, _training_partitions(context, training_set)
    )
    ref = store_profile(store, profile)
    return versioned_output(
        ref,
        {
            **artifact_metadata(ref),
            **profile_metadata(profile, scores),
            "calibrated_on_partitions": dg.MetadataValue.int(calibrated_on),
            "model_sha256": dg.MetadataValue.text(champion_model.sha256),
        },
    )


def _training_partitions(context: dg.AssetExecutionContext, training_set: ArtifactRef) -> list[str]:
    """The partitions the training set recorded it was built from; none when the latest record
    is another training set's."""
    recorded = latest_materialization_metadata(context.instance, dg.AssetKey("training_set"))
    if recorded.get("sha256") != training_set.sha256:
        return []
    return [key.strip() for key in str(recorded.get("partitions", "")).split(",") if key.strip()]
