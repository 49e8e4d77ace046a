"""The code location: assembles the reference pipeline and its resources into one ``dg.Definitions``."""

from __future__ import annotations

import dagster as dg

from aiops_assets.assets import build_reference_assets
from aiops_assets.assets.features import FEATURES_KEY
from aiops_assets.checks.drift import DRIFT_CHECK_NAME, build_drift_checks
from aiops_assets.checks.leakage import build_leakage_check
from aiops_assets.checks.quality import build_quality_checks
from aiops_assets.core.quality import DEFAULT_FEATURES_SUITE, Severity
from aiops_assets.resources import (
    ArtifactRefIOManager,
    ArtifactStoreResource,
    TelemetrySourceResource,
)
from aiops_assets.settings import PipelineSettings

# The pipeline's stages, in the order a first run needs them: daily ingest, then training and the
# drift baselines (which need some days of features), then daily scoring and drift checks (which
# need the champion and the baselines).
INGEST_ASSETS = ("telemetry_snapshot", "features")
TRAINING_ASSETS = (
    "drift_baseline",
    "training_set",
    "candidate_model",
    "champion_model",
    "score_baseline",
)
SCORING_ASSETS = ("anomaly_scores",)
PARTITIONED_ASSETS = (*INGEST_ASSETS, *SCORING_ASSETS)
UNPARTITIONED_ASSETS = TRAINING_ASSETS
FEATURES_DRIFT_CHECK = dg.AssetCheckKey(FEATURES_KEY, DRIFT_CHECK_NAME)


def ingest_selection() -> dg.AssetSelection:
    """Snapshot and features with their checks, except drift (its baseline may not exist yet)."""
    return dg.AssetSelection.assets(*INGEST_ASSETS) - dg.AssetSelection.checks(FEATURES_DRIFT_CHECK)


def scoring_selection() -> dg.AssetSelection:
    """The champion's scores with their drift check, and the drift check of the day's features."""
    return dg.AssetSelection.assets(*SCORING_ASSETS) | dg.AssetSelection.checks(
        FEATURES_DRIFT_CHECK
    )


def daily_partitions(settings: PipelineSettings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=settings.start.isoformat(), end_date=settings.end.isoformat()
    )


def build_resources(settings: PipelineSettings) -> dict[str, object]:
    artifact_store = ArtifactStoreResource(root=settings.store_root)
    return {
        "artifact_store": artifact_store,
        "artifact_io_manager": ArtifactRefIOManager(root=settings.store_root),
        "telemetry_source": TelemetrySourceResource(
            kind=settings.source_kind,
            path=settings.source_path or None,
            scenario_start=settings.start.isoformat(),
            scenario_days=settings.days,
            seed=settings.seed,
        ),
    }


def build_definitions(settings: PipelineSettings) -> dg.Definitions:
    partitions_def = daily_partitions(settings)
    assets = build_reference_assets(partitions_def, settings.quality_suite)
    by_name = {asset.key.to_user_string(): asset for asset in assets}
    features = by_name["features"]
    return dg.Definitions(
        assets=assets,
        asset_checks=[
            *build_quality_checks(features, DEFAULT_FEATURES_SUITE, severity=Severity.WARN),
            build_leakage_check(partitions_def),
            *build_drift_checks(features, by_name["drift_baseline"]),
            *build_drift_checks(by_name["anomaly_scores"], by_name["score_baseline"]),
        ],
        jobs=[
            dg.define_asset_job(
                "daily_telemetry_job",
                selection=dg.AssetSelection.assets(*PARTITIONED_ASSETS),
                executor_def=dg.in_process_executor,
                description=(
                    "Snapshot, featurize and score one day of telemetry, with every check "
                    "(the drift baselines and a champion must exist: run train_and_promote_job once)."
                ),
            ),
            dg.define_asset_job(
                "train_and_promote_job",
                selection=dg.AssetSelection.assets(*UNPARTITIONED_ASSETS),
                executor_def=dg.in_process_executor,
                description=(
                    "Profile the drift baselines, build the training set, train a candidate and "
                    "decide on the champion."
                ),
            ),
        ],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(PipelineSettings.from_env())
