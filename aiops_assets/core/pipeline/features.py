"""One day's feature set from the snapshots of that day and the day before."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from aiops_assets.core.features import (
    FeatureSetSpec,
    compute_features_by_service,
    model_input_columns,
)
from aiops_assets.core.store import ArtifactRef, ArtifactStore

FEATURES_CODE_VERSION = "features-2"
FEATURES_ASSET = "features"

# The libraries whose behaviour decides the feature values: an upgrade of one is a change the
# incident report must be able to name, even though no code or config of ours changed.
FEATURE_LIBRARIES = ("pandas", "numpy")

# Features of day D read day D-1 as history, so a trailing window never starts cut off at midnight.
HISTORY_PARTITIONS = 1


class FeatureSetRefused(ValueError):
    """A feature set this step cannot compute as configured (the message says why)."""


@dataclass(frozen=True)
class DayFeatures:
    """The stored feature frame, the spec naming it and the facts a training capsule needs."""

    ref: ArtifactRef
    frame: pd.DataFrame
    spec: FeatureSetSpec
    specs: dict[str, FeatureSetSpec]

    def facts(
        self, history: Mapping[str, ArtifactRef], by_service: Mapping[str, FeatureSetSpec]
    ) -> dict[str, Any]:
        """Plain values: what an orchestrator records so a re-run starts from the same bytes."""
        return {
            "sha256": self.ref.sha256,
            "feature_set_version": self.spec.version_id,
            "feature_spec_hash": self.spec.spec_hash,
            "feature_spec": self.spec.to_dict(),
            "feature_sets_by_service": {
                service: item.version_id for service, item in sorted(by_service.items())
            },
            "feature_specs": {
                version: item.to_dict() for version, item in sorted(self.specs.items())
            },
            "model_input_features": len(model_input_columns(self.frame)),
            "history_partitions": ", ".join(sorted(history)),
            "history_snapshots": {key: history[key].sha256 for key in sorted(history)},
        }


def history_frame(store: ArtifactStore, history: Mapping[str, ArtifactRef]) -> pd.DataFrame:
    """The snapshots read as history, oldest first, as one frame."""
    return pd.concat([store.get_frame(history[key]) for key in sorted(history)], ignore_index=True)


def compute_day_features(
    store: ArtifactStore,
    history: pd.DataFrame,
    by_service: Mapping[str, FeatureSetSpec],
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> DayFeatures:
    """Compute, store and name the day's features; ``MixedColumnsError`` propagates.

    The version most services use names the partition; a split shows in the facts.
    """
    specs = {spec.version_id: spec for spec in by_service.values()}
    for candidate in specs.values():
        if candidate.lookback > pd.Timedelta(days=HISTORY_PARTITIONS):
            raise FeatureSetRefused(
                f"feature set {candidate.version_id}'s windows {list(candidate.windows)} "
                f"look back {candidate.lookback}, more than the {HISTORY_PARTITIONS} "
                "day(s) of history this asset reads; shorten the windows"
            )
    frame = compute_features_by_service(
        history, dict(by_service), output_start=start, output_end=end
    )
    counts = Counter(item.version_id for item in by_service.values())
    spec = specs[max(sorted(counts), key=counts.__getitem__)]
    return DayFeatures(ref=store.put_frame(frame), frame=frame, spec=spec, specs=specs)
