"""``features``: the versioned feature set of one day, computed point-in-time correct."""

import warnings
from datetime import timedelta

import dagster as dg
from pydantic import Field

from aiops_assets import ArtifactRefIOManager, ArtifactStoreResource
from aiops_assets.core import features as core_features
from aiops_assets.core.code_fingerprint import FINGERPRINT_KEY, code_fingerprint
from aiops_assets.core.environments import EnvironmentRefusal
from aiops_assets.core.features import (
    SERVICE,
    FeatureSetSpec,
    MixedColumnsError,
    model_input_columns,
)
from aiops_assets.core.lifecycle import spec_of
from aiops_assets.core.pipeline.features import (
    FEATURE_LIBRARIES,
    FEATURES_CODE_VERSION,
    HISTORY_PARTITIONS,
    FeatureSetRefused,
    compute_day_features,
    history_frame,
)
from aiops_assets.core.store import ArtifactRef
from aiops_assets.keys import FEATURES_KEY, SNAPSHOT_KEY
from aiops_assets.metadata import (
    PACKAGES_KEY,
    artifact_metadata,
    config_hash,
    frame_metadata,
    package_versions,
    partition_window,
    versioned_output,
)
from aiops_assets.resources import FeatureFlagsResource

__all__ = [
    "FEATURES_CODE_VERSION",
    "FEATURE_LIBRARIES",
    "HISTORY_PARTITIONS",
    "FeaturesConfig",
    "build_features_asset",
    "history_input",
]


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


def history_periods(partitions_def: dg.PartitionsDefinition) -> int:
    """How many partitions back a partition reads: enough to hold ``HISTORY_PARTITIONS`` days.

    One for daily partitions; 24 for hourly ones, so an hour's 24-hour windows see the day
    before it as a day's do (with one hour back they would silently start from almost nothing).
    """
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return HISTORY_PARTITIONS
    first = partitions_def.get_first_partition_window()
    if first is None:
        return HISTORY_PARTITIONS
    period = first.end - first.start
    history = timedelta(days=HISTORY_PARTITIONS)
    return max(1, -(-history // period))


def _history_mapping(periods: int) -> dg.TimeWindowPartitionMapping:
    """Partition P reads P-periods..P; the first ones of the range simply have less history.

    ``allow_nonexistent_upstream_partitions`` is a beta parameter; it is the documented way to say
    that a missing earlier partition at the start of the range is expected, so its notice is muted.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-periods, allow_nonexistent_upstream_partitions=True
        )


def history_input(periods: int = HISTORY_PARTITIONS) -> dg.AssetIn:
    """Snapshots of the day before and of the partition itself; the earlier ones are optional
    (the first partitions, or a quarantined one, lack them)."""
    return dg.AssetIn(
        key=SNAPSHOT_KEY,
        partition_mapping=_history_mapping(periods),
        metadata={ArtifactRefIOManager.ALLOW_MISSING_PARTITIONS: True},
    )


def build_features_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=FEATURES_KEY,
        partitions_def=partitions_def,
        code_version=FEATURES_CODE_VERSION,
        io_manager_key="artifact_io_manager",
        group_name="aiops",
        kinds={"pandas", "parquet"},
        ins={"telemetry_snapshot": history_input(history_periods(partitions_def))},
        description=(
            "Rolling means, spreads and z-scores per metric and window, standardized rate of change and "
            "error-to-request ratio; every row uses only rows at or before it."
        ),
    )
    def features(
        context: dg.AssetExecutionContext,
        config: FeaturesConfig,
        artifact_store: ArtifactStoreResource,
        feature_flags: FeatureFlagsResource,
        telemetry_snapshot: dict[str, ArtifactRef],
    ) -> dg.Output[ArtifactRef]:
        if context.partition_key not in telemetry_snapshot:
            raise dg.Failure(
                description=(
                    f"telemetry_snapshot[{context.partition_key}] has no accepted snapshot (it was "
                    "quarantined or never materialized); features cannot be computed for this day"
                )
            )
        start, end = partition_window(context)
        store = artifact_store.get_store()
        history = history_frame(store, telemetry_snapshot)
        by_service = _feature_sets_by_service(
            feature_flags, config.spec(), sorted(str(s) for s in history[SERVICE].unique())
        )
        try:
            day = compute_day_features(store, history, by_service, start=start, end=end)
        except (FeatureSetRefused, MixedColumnsError) as error:
            raise dg.Failure(description=str(error)) from error
        ref, frame, spec, specs = day.ref, day.frame, day.spec, day.specs
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
                FINGERPRINT_KEY: dg.MetadataValue.text(code_fingerprint([core_features])),
                "feature_sets_by_service": dg.MetadataValue.json(
                    {service: item.version_id for service, item in sorted(by_service.items())}
                ),
                # Every spec computed, so a check can recompute each service as it was.
                "feature_specs": dg.MetadataValue.json(
                    {version: item.to_dict() for version, item in sorted(specs.items())}
                ),
                "model_input_features": dg.MetadataValue.int(len(model_input_columns(frame))),
                "history_partitions": dg.MetadataValue.text(", ".join(sorted(telemetry_snapshot))),
                # The exact snapshot versions read, so a check can recompute from the same bytes.
                "history_snapshots": dg.MetadataValue.json(
                    {key: telemetry_snapshot[key].sha256 for key in sorted(telemetry_snapshot)}
                ),
            },
        )

    return features


def _feature_sets_by_service(
    flags: FeatureFlagsResource, configured: FeatureSetSpec, services: list[str]
) -> dict[str, FeatureSetSpec]:
    """The spec each service's ``feature_set`` flag selects.

    Flags choose among the feature sets registered in the ledger; until a team registers one of
    this name (adopting the lifecycle), or when no flag targets the name, the run's configured
    spec serves every service. A run configured with a spec of its own (a backfill pinned to a
    version, an experiment from the launchpad) is an explicit choice and computes that spec for
    every service; the materialization's ``feature_sets_by_service`` shows what was computed.
    """
    registered = {
        record.version_id: record for record in flags.registered_feature_sets(configured.name)
    }
    if (
        configured != FeaturesConfig().spec()
        or not registered
        or flags.get_flags().flag_for("feature_set", configured.name) is None
    ):
        return dict.fromkeys(services, configured)
    try:
        selected = flags.feature_sets_for(services, configured.name)
    except EnvironmentRefusal as error:
        raise dg.Failure(description=str(error)) from error
    specs = {configured.version_id: configured}
    for service, version_id in selected.items():
        if version_id not in specs and version_id not in registered:
            raise dg.Failure(
                description=(
                    f"the feature flags select {version_id} for {service}, which is neither the "
                    f"configured spec ({configured.version_id}) nor registered in the ledger; "
                    "register it (`aiops featureset register`) or fix the flag"
                )
            )
        if version_id not in specs:
            specs[version_id] = spec_of(registered[version_id])
    return {service: specs[version_id] for service, version_id in selected.items()}
