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
from aiops_assets.core.models import HOLDOUT, SCORE, SPLIT, AnomalyDetector, score_frame
from aiops_assets.core.registry import MODEL_NAME, load_model
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.metadata import artifact_metadata, frame_metadata, versioned_output
from aiops_assets.resources import ALLOW_MISSING_PARTITIONS, ArtifactStoreResource, LedgerResource

PROFILE_MEDIA_TYPE = "application/x-aiops-drift-profile"
BASELINE_CODE_VERSION = "drift_baseline-1"
SCORES_CODE_VERSION = "anomaly_scores-2"
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
) -> dg.AssetsDefinition:
    """An unpartitioned asset profiling the first partitions of ``source`` as a drift baseline.

    Every numeric column but ``exclude`` and ``labels`` is profiled as a numeric feature;
    ``labels`` (0/1) get label drift. Each reference partition is also a calibration chunk, so the
    policy's calibrated thresholds match the size of the partitions that will be checked. The
    reference window is the first ``reference_partitions`` (run config, default 3) partitions that
    have a value; partitions never materialized are skipped, whichever IO manager stores them.

    The profile is written to the artifact store, so the code location needs the
    ``artifact_store`` resource and the ``artifact_io_manager`` IO manager
    (:class:`ArtifactStoreResource`, :class:`ArtifactRefIOManager`).

    Args:
        source: A partitioned asset whose value is a pandas DataFrame, with any column names.
        name: The baseline asset's name (one baseline per monitored asset needs distinct names).
        exclude: Columns that are keys or identifiers, not features: never profiled.
        labels: 0/1 columns profiled for label drift (absent ones are ignored).
        group_name: The asset group the baseline appears in.

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
        profile = build_profile(reference, numeric=numeric, labels=present_labels)
        profile = calibrate(profile, chunks)
        ref = store_profile(artifact_store.get_store(), profile)
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **profile_metadata(profile, reference),
                "reference_partitions": dg.MetadataValue.text(", ".join(keys)),
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
        description="The champion's anomaly score and alert for every row of the day.",
    )
    def anomaly_scores(
        context: dg.AssetExecutionContext,
        artifact_store: ArtifactStoreResource,
        ledger: LedgerResource,
        features: dict[str, ArtifactRef],
        champion_model: ArtifactRef,
    ) -> dg.Output[ArtifactRef]:
        store = artifact_store.get_store()
        version = ledger.get_ledger().find_version(MODEL_NAME, champion_model.sha256)
        # A registered model loads only after its bytes match the ledger's hash (a tampered file
        # is refused with the version named); an unregistered one still verifies against the store.
        detector: AnomalyDetector = (
            load_model(store, version) if version is not None else store.get_pickle(champion_model)
        )
        frame = score_frame(detector, store.get_frame(features[context.partition_key]))
        ref = store.put_frame(frame)
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **frame_metadata(frame),
                "alert_rate": dg.MetadataValue.float(float(frame["alert"].mean())),
                "mean_score": dg.MetadataValue.float(float(frame[SCORE].mean())),
                "model_sha256": dg.MetadataValue.text(champion_model.sha256),
                "model_version": dg.MetadataValue.int(0 if version is None else version.version),
            },
        )

    return anomaly_scores


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
