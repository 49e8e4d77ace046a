"""The code location: assembles the reference pipeline and its resources into one ``dg.Definitions``."""

from __future__ import annotations

import dagster as dg

from aiops_assets.assets import build_reference_assets
from aiops_assets.assets.features import FEATURES_KEY
from aiops_assets.checks.leakage import build_leakage_check
from aiops_assets.checks.quality import build_quality_checks
from aiops_assets.core.quality import DEFAULT_FEATURES_SUITE, Severity
from aiops_assets.resources import (
    ArtifactRefIOManager,
    ArtifactStoreResource,
    TelemetrySourceResource,
)
from aiops_assets.settings import PipelineSettings

PARTITIONED_ASSETS = ("telemetry_snapshot", "features")
UNPARTITIONED_ASSETS = ("training_set", "candidate_model", "champion_model")


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
    features = next(asset for asset in assets if asset.key == FEATURES_KEY)
    return dg.Definitions(
        assets=assets,
        asset_checks=[
            *build_quality_checks(features, DEFAULT_FEATURES_SUITE, severity=Severity.WARN),
            build_leakage_check(partitions_def),
        ],
        jobs=[
            dg.define_asset_job(
                "daily_telemetry_job",
                selection=dg.AssetSelection.assets(*PARTITIONED_ASSETS),
                executor_def=dg.in_process_executor,
                description="Snapshot and featurize one day of telemetry.",
            ),
            dg.define_asset_job(
                "train_and_promote_job",
                selection=dg.AssetSelection.assets(*UNPARTITIONED_ASSETS),
                executor_def=dg.in_process_executor,
                description="Build the training set, train a candidate and decide on the champion.",
            ),
        ],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(PipelineSettings.from_env())
