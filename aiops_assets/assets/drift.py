"""Drift baselines and the scores they are compared with.

``drift_baseline`` profiles the first days of ``features`` once; ``score_baseline`` profiles the
champion's scores on its own training data; ``anomaly_scores`` is the champion's output per day.
Drift checks (``checks/drift.py``) compare each new partition with these profiles and never rescan
the reference data.
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from aiops_assets.core.drift import BaselineProfile, build_profile, calibrate
from aiops_assets.core.features import KEY_COLUMNS, LABEL, TIMESTAMP
from aiops_assets.core.flags import pinned_version
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.models import HOLDOUT, SCORE, SPLIT, AnomalyDetector, score_frame
from aiops_assets.core.registry import MODEL_NAME, load_model
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN, running_rollout, serving_versions
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.core.telemetry import SERVICE
from aiops_assets.metadata import artifact_metadata, frame_metadata, versioned_output
from aiops_assets.resources import (
    ALLOW_MISSING_PARTITIONS,
    ArtifactStoreResource,
    FeatureFlagsResource,
    LedgerResource,
)

PROFILE_MEDIA_TYPE = "application/x-aiops-drift-profile"
BASELINE_CODE_VERSION = "drift_baseline-2"  # 2: per-service slice profiles
SCORES_CODE_VERSION = "anomaly_scores-3"
SCORE_BASELINE_CODE_VERSION = "score_baseline-1"


class DriftBaselineConfig(dg.Config):
    """The reference window: the first ``reference_partitions`` partitions that exist."""

    reference_partitions: int = 3


def store_profile(store: ArtifactStore, profile: BaselineProfile) -> ArtifactRef:
    return store.put_bytes(profile.to_bytes(), PROFILE_MEDIA_TYPE)


def profile_metadata(profile: BaselineProfile, reference: pd.DataFrame) -> dict[str, object]:
    modes = pd.Series([feature.mode for feature in profile.features]).value_counts().to_dict()
    return {
        "profiled_features": dg.MetadataValue.int(len(profile.features)),
        "reference_rows": dg.MetadataValue.int(len(reference)),
        "modes": dg.MetadataValue.text(
            ", ".join(f"{mode}: {count}" for mode, count in sorted(modes.items()))
        ),
    }


def build_drift_baseline_asset(
    source: dg.AssetsDefinition | dg.AssetSpec,
    *,
    name: str = "drift_baseline",
    exclude: Sequence[str] = KEY_COLUMNS,
    labels: Sequence[str] = (LABEL,),
    group_name: str | None = "aiops",
    slice_by: str | None = SERVICE,
) -> dg.AssetsDefinition:
    """An unpartitioned asset profiling the first partitions of ``source`` as a drift baseline.

    Every numeric column but ``exclude`` and ``labels`` is profiled as a numeric feature;
    ``labels`` (0/1) get label drift. Each reference partition is also a calibration chunk, so the
    policy's calibrated thresholds match the size of the partitions that will be checked. The
    reference window is the first ``reference_partitions`` (run config, default 3) partitions that
    have a value; partitions never materialized are skipped, whichever IO manager stores them.

    With ``slice_by`` (by default the ``service`` column, when the reference has one) each value
    of that column also gets its own profile, built and calibrated the same way on its rows only,
    so the drift check judges each service against its own reference as well as overall.

    The profile is written to the artifact store, so the code location needs the
    ``artifact_store`` resource and the ``artifact_io_manager`` IO manager
    (:class:`ArtifactStoreResource`, :class:`ArtifactRefIOManager`).

    Args:
        source: A partitioned asset whose value is a pandas DataFrame, with any column names.
        name: The baseline asset's name (one baseline per monitored asset needs distinct names).
        exclude: Columns that are keys or identifiers, not features: never profiled.
        labels: 0/1 columns profiled for label drift (absent ones are ignored).
        group_name: The asset group the baseline appears in.
        slice_by: The column whose values get a profile each; ``None`` for none. The default,
            ``service``, is skipped when the reference has no such column; any other column
            must exist.

    Example:
        >>> baseline = build_drift_baseline_asset(  # doctest: +SKIP
        ...     service_metrics, name="service_metrics_baseline", exclude=["ts", "host"],
        ...     labels=["is_incident"],
        ... )
        >>> checks = build_drift_checks(service_metrics, baseline)  # doctest: +SKIP
    """
    source_name = source.key.to_user_string()

    @dg.asset(
        name=name,
        code_version=BASELINE_CODE_VERSION,
        io_manager_key="artifact_io_manager",
        group_name=group_name,
        kinds={"numpy"},
        ins={
            "source": dg.AssetIn(
                key=source.key,
                # Ours for the artifact IO manager; Dagster's own for a host's UPath IO manager.
                metadata={ALLOW_MISSING_PARTITIONS: True, "allow_missing_partitions": True},
            )
        },
        description=(
            f"Drift reference: a mergeable per-column profile of the first partitions of "
            f"{source.key.to_user_string()}, calibrated on each of them."
        ),
    )
    def drift_baseline(
        config: DriftBaselineConfig,
        artifact_store: ArtifactStoreResource,
        source: dict[str, pd.DataFrame],
    ) -> dg.Output[ArtifactRef]:
        keys = sorted(source)[: config.reference_partitions]
        if len(keys) < min(2, config.reference_partitions):
            raise dg.Failure(
                description=(
                    f"the drift baseline needs {config.reference_partitions} partitions of "
                    f"{source_name}; only {keys} have a current version"
                )
            )
        chunks = [source[key] for key in keys]
        reference = pd.concat(chunks, ignore_index=True)
        present_labels = [label for label in labels if label in reference]
        numeric = [
            str(column)
            for column in reference.columns
            if column not in (*exclude, *present_labels)
            and pd.api.types.is_numeric_dtype(reference[column])
        ]
        sliced_by = slice_by if slice_by in reference else None
        if slice_by is not None and sliced_by is None and slice_by != SERVICE:
            raise dg.Failure(
                description=f"cannot slice the drift baseline by {slice_by!r}: {source_name} has "
                f"no such column (it has {[str(column) for column in reference.columns]})"
            )
        # The slice column names the slice; as a feature it would be constant within each.
        numeric = [column for column in numeric if column != sliced_by]
        profile = build_profile(
            reference, numeric=numeric, labels=present_labels, slice_by=sliced_by
        )
        profile = calibrate(profile, chunks)
        ref = store_profile(artifact_store.get_store(), profile)
        slices = (
            {
                "profiled_slices": dg.MetadataValue.text(
                    ", ".join(profile.slice_label(value) for value in profile.slices)
                )
            }
            if profile.slices
            else {}
        )
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **profile_metadata(profile, reference),
                "reference_partitions": dg.MetadataValue.text(", ".join(keys)),
                **slices,
            },
        )

    return drift_baseline


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
        for served, rows in _groups_by_version(day, serving, version):
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


def _groups_by_version(
    day: pd.DataFrame, serving: dict[str, int | None], champion: ModelVersion | None
) -> list[tuple[int | None, pd.DataFrame]]:
    """The day's rows split by the version that scores them, the champion's first."""
    by_service = day[SERVICE].astype(str).map(serving)
    champion_number = None if champion is None else champion.version
    groups: list[tuple[int | None, pd.DataFrame]] = []
    if by_service.isna().all():
        return [(champion_number, day)]
    order = sorted(
        {int(v) for v in by_service.dropna().unique()}, key=lambda v: (v != champion_number, v)
    )
    for served in order:
        groups.append((served, day[by_service == served]))
    unassigned = day[by_service.isna()]
    if not unassigned.empty:
        groups.append((champion_number, unassigned))
    return groups


def _detector(
    store: ArtifactStore, registry: Ledger, served: int | None, champion_model: ArtifactRef
) -> AnomalyDetector:
    """A registered model loads only after its bytes match the ledger's hash (a tampered file is
    refused with the version named); an unregistered champion still verifies against the store."""
    if served is None:
        detector: AnomalyDetector = store.get_pickle(champion_model)
        return detector
    version = registry.get_version(MODEL_NAME, served)
    if version is None:
        raise dg.Failure(
            description=f"{MODEL_NAME} v{served} is assigned to serve but is not in the ledger"
        )
    return load_model(store, version)


@dg.asset(
    code_version=SCORE_BASELINE_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"numpy"},
    description=(
        "Prediction-drift reference: the champion's score distribution (and label rate) on its own "
        "training data, calibrated per training day."
    ),
)
def score_baseline(
    artifact_store: ArtifactStoreResource,
    champion_model: ArtifactRef,
    training_set: ArtifactRef,
) -> dg.Output[ArtifactRef]:
    store = artifact_store.get_store()
    detector: AnomalyDetector = store.get_pickle(champion_model)
    training = store.get_frame(training_set)
    train = training[training[SPLIT] != HOLDOUT]
    scores = score_frame(detector, train)
    profile = build_profile(scores, numeric=[], predictions=[SCORE], labels=[LABEL])
    chunks = [day for _, day in scores.groupby(scores[TIMESTAMP].dt.floor("D"))]
    # Calibration needs at least two chunks to measure spread; with a single training day the
    # policy's plain floors apply, and the metadata says so.
    calibrated = len(chunks) >= 2
    if calibrated:
        profile = calibrate(profile, chunks)
    ref = store_profile(store, profile)
    return versioned_output(
        ref,
        {
            **artifact_metadata(ref),
            **profile_metadata(profile, scores),
            "calibrated_on_days": dg.MetadataValue.int(len(chunks) if calibrated else 0),
            "model_sha256": dg.MetadataValue.text(champion_model.sha256),
        },
    )
