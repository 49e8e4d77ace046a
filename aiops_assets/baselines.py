"""The drift baseline factory: a mergeable profile of the first partitions of any DataFrame asset.

Drift checks (``checks/drift.py``) compare each new partition with this profile and never rescan
the reference data. Used by the reference pipeline and by any host project alike.
"""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg
import pandas as pd

from aiops_assets.core.drift import BaselineProfile, build_profile, calibrate
from aiops_assets.core.features import KEY_COLUMNS, LABEL
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.core.telemetry import SERVICE
from aiops_assets.io import ALLOW_MISSING_PARTITIONS
from aiops_assets.metadata import artifact_metadata, versioned_output
from aiops_assets.resources import ArtifactStoreResource

PROFILE_MEDIA_TYPE = "application/x-aiops-drift-profile"
BASELINE_CODE_VERSION = "drift_baseline-2"  # 2: per-service slice profiles
# A reference spans this many days whatever the partitioning, so an hourly one holds whole days
# (their daily cycle, and hours whose 24-hour features had history) rather than three night hours.
REFERENCE_DAYS = 3


class DriftBaselineConfig(dg.Config):
    """The reference window: the first ``reference_partitions`` partitions that exist; unset,
    ``REFERENCE_DAYS`` days' worth of them (3 daily partitions, 72 hourly ones)."""

    reference_partitions: int | None = None


def reference_partition_count(partitions_def: dg.PartitionsDefinition | None) -> int:
    """How many partitions make ``REFERENCE_DAYS`` days: 3 for daily (or coarser, or untimed)
    partitions, 72 for hourly ones."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return REFERENCE_DAYS
    first = partitions_def.get_first_partition_window()
    if first is None:
        return REFERENCE_DAYS
    return max(REFERENCE_DAYS, -(-timedelta(days=REFERENCE_DAYS) // (first.end - first.start)))


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
    reference window is the first ``reference_partitions`` partitions that have a value (run
    config; by default three days' worth: 3 daily partitions, 72 hourly ones); partitions never
    materialized are skipped, whichever IO manager stores them.

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
    default_reference = reference_partition_count(source.partitions_def)

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
        keys = _reference_keys(
            source, config.reference_partitions or default_reference, source_name
        )
        chunks = [source[key] for key in keys]
        reference = pd.concat(chunks, ignore_index=True)
        numeric, present_labels, sliced_by = _profiled_columns(
            reference, exclude, labels, slice_by, source_name
        )
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


def _reference_keys(source: dict[str, pd.DataFrame], wanted: int, source_name: str) -> list[str]:
    """The first ``wanted`` partitions that have a value; fewer than two calibrate nothing."""
    keys = sorted(source)[:wanted]
    if len(keys) < min(2, wanted):
        raise dg.Failure(
            description=(
                f"the drift baseline needs {wanted} partitions of "
                f"{source_name}; only {keys} have a current version"
            )
        )
    return keys


def _profiled_columns(
    reference: pd.DataFrame,
    exclude: Sequence[str],
    labels: Sequence[str],
    slice_by: str | None,
    source_name: str,
) -> tuple[list[str], list[str], str | None]:
    """The numeric features, the labels present and the slice column of the reference."""
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
    return [column for column in numeric if column != sliced_by], present_labels, sliced_by
