"""``features``: the versioned feature set of one day, computed point-in-time correct."""

import warnings

import dagster as dg
import pandas as pd
from pydantic import Field

from aiops_assets.assets.snapshot import SNAPSHOT_KEY
from aiops_assets.core.features import FeatureSetSpec, compute_features, model_input_columns
from aiops_assets.core.store import ArtifactRef
from aiops_assets.metadata import (
    PACKAGES_KEY,
    artifact_metadata,
    config_hash,
    frame_metadata,
    package_versions,
    partition_window,
    versioned_output,
)
from aiops_assets.resources import ALLOW_MISSING_PARTITIONS, ArtifactStoreResource

FEATURES_CODE_VERSION = "features-2"
FEATURES_KEY = dg.AssetKey("features")

# The libraries whose behaviour decides the feature values: an upgrade of one is a change the
# incident report must be able to name, even though no code or config of ours changed.
FEATURE_LIBRARIES = ("pandas", "numpy")

# Features of day D read day D-1 as history, so a trailing window never starts cut off at midnight.
HISTORY_PARTITIONS = 1


class FeaturesConfig(dg.Config):
    """The feature-set spec; its hash becomes part of the feature-set version."""

    name: str = "telemetry_core"
    version: int = 1
    windows: list[str] = Field(default_factory=lambda: ["1h", "24h"])
    min_periods: int = 3

    def spec(self) -> FeatureSetSpec:
        return FeatureSetSpec(
            name=self.name,
            version=self.version,
            windows=tuple(self.windows),
            min_periods=self.min_periods,
        )


def _history_mapping() -> dg.TimeWindowPartitionMapping:
    """Day D reads days D-1 and D; the first day of the range simply has no D-1.

    ``allow_nonexistent_upstream_partitions`` is a beta parameter; it is the documented way to say
    that a missing earlier partition at the start of the range is expected, so its notice is muted.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-HISTORY_PARTITIONS, allow_nonexistent_upstream_partitions=True
        )


def history_input() -> dg.AssetIn:
    """Snapshots of D-1 and D; D-1 is optional (the first day, or a quarantined day, lacks it)."""
    return dg.AssetIn(
        key=SNAPSHOT_KEY,
        partition_mapping=_history_mapping(),
        metadata={ALLOW_MISSING_PARTITIONS: True},
    )


def build_features_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=FEATURES_KEY,
        partitions_def=partitions_def,
        code_version=FEATURES_CODE_VERSION,
        io_manager_key="artifact_io_manager",
        group_name="aiops",
        kinds={"pandas", "parquet"},
        ins={"telemetry_snapshot": history_input()},
        description=(
            "Rolling means, spreads and z-scores per metric and window, standardized rate of change and "
            "error-to-request ratio; every row uses only rows at or before it."
        ),
    )
    def features(
        context: dg.AssetExecutionContext,
        config: FeaturesConfig,
        artifact_store: ArtifactStoreResource,
        telemetry_snapshot: dict[str, ArtifactRef],
    ) -> dg.Output[ArtifactRef]:
        spec = config.spec()
        if spec.lookback > pd.Timedelta(days=HISTORY_PARTITIONS):
            raise dg.Failure(
                description=(
                    f"feature windows {list(spec.windows)} look back {spec.lookback}, more than the "
                    f"{HISTORY_PARTITIONS} day(s) of history this asset reads; shorten the windows"
                )
            )
        if context.partition_key not in telemetry_snapshot:
            raise dg.Failure(
                description=(
                    f"telemetry_snapshot[{context.partition_key}] has no accepted snapshot (it was "
                    "quarantined or never materialized); features cannot be computed for this day"
                )
            )
        start, end = partition_window(context)
        store = artifact_store.get_store()
        history = pd.concat(
            [store.get_frame(telemetry_snapshot[key]) for key in sorted(telemetry_snapshot)],
            ignore_index=True,
        )
        frame = compute_features(history, spec, output_start=start, output_end=end)
        ref = store.put_frame(frame)
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **frame_metadata(frame),
                "feature_set_version": dg.MetadataValue.text(spec.version_id),
                "feature_spec_hash": dg.MetadataValue.text(spec.spec_hash),
                "feature_spec": dg.MetadataValue.json(spec.to_dict()),
                "config_hash": dg.MetadataValue.text(config_hash(config)),
                PACKAGES_KEY: dg.MetadataValue.json(package_versions(FEATURE_LIBRARIES)),
                "model_input_features": dg.MetadataValue.int(len(model_input_columns(frame))),
                "history_partitions": dg.MetadataValue.text(", ".join(sorted(telemetry_snapshot))),
                # The exact snapshot versions read, so a check can recompute from the same bytes.
                "history_snapshots": dg.MetadataValue.json(
                    {key: telemetry_snapshot[key].sha256 for key in sorted(telemetry_snapshot)}
                ),
            },
        )

    return features
