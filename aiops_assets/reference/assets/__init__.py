"""The reference pipeline: telemetry -> snapshot -> features -> training set -> model -> champion."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from aiops_assets import build_drift_baseline_asset
from aiops_assets.reference.assets.drift import build_anomaly_scores_asset, score_baseline
from aiops_assets.reference.assets.features import build_features_asset
from aiops_assets.reference.assets.models import candidate_model, champion_model, training_set
from aiops_assets.reference.assets.snapshot import build_snapshot_asset


def build_reference_assets(
    partitions_def: dg.PartitionsDefinition, quality_suite: str | Path
) -> list[dg.AssetsDefinition]:
    """The reference assets; the daily ones share ``partitions_def``.

    ``quality_suite`` is the suite file that gates each snapshot (see ``docs/checks.md``).
    """
    features = build_features_asset(partitions_def)
    return [
        build_snapshot_asset(partitions_def, quality_suite),
        features,
        training_set,
        candidate_model,
        champion_model,
        build_drift_baseline_asset(features),
        score_baseline,
        build_anomaly_scores_asset(partitions_def, features.key, champion_model.key),
    ]


__all__ = ["build_reference_assets"]
