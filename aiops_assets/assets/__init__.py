"""The reference pipeline: telemetry -> snapshot -> features -> training set -> model -> champion."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from aiops_assets.assets.features import build_features_asset
from aiops_assets.assets.models import candidate_model, champion_model, training_set
from aiops_assets.assets.snapshot import build_snapshot_asset


def build_reference_assets(
    partitions_def: dg.PartitionsDefinition, quality_suite: str | Path
) -> list[dg.AssetsDefinition]:
    """The five reference assets; the daily ones share ``partitions_def``.

    ``quality_suite`` is the suite file that gates each snapshot (see ``docs/checks.md``).
    """
    return [
        build_snapshot_asset(partitions_def, quality_suite),
        build_features_asset(partitions_def),
        training_set,
        candidate_model,
        champion_model,
    ]


__all__ = ["build_reference_assets"]
