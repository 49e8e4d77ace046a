"""The point-in-time check on the reference ``features``: recompute without the future, nothing may
move.

The reference's own check, not a plugin factory: it reads back the feature spec and snapshot
versions the reference ``features`` asset records (``feature_spec``, ``history_snapshots``) and
recomputes with the reference's feature code.
"""

import warnings
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets import ArtifactStoreResource
from aiops_assets.core.features import (
    SERVICE,
    FeatureSetSpec,
    compute_features_by_service,
    probe_point_in_time,
)
from aiops_assets.core.markdown import md_code, md_text
from aiops_assets.keys import FEATURES_KEY, LEAKAGE_CHECK_NAME
from aiops_assets.metadata import partition_window


def build_leakage_check(
    partitions_def: dg.PartitionsDefinition, *, cutoffs: int = 3, sample_rows: int = 200
) -> dg.AssetChecksDefinition:
    """A blocking ERROR check: features recomputed with every row after a cutoff removed must equal
    the stored features before that cutoff, on a seeded sample of rows and cutoffs.

    The feature spec and the snapshot versions are read back from the materialization's metadata
    (``feature_spec``, ``history_snapshots``), so the check recomputes from exactly the spec and
    the bytes that produced the stored features, even if a snapshot was re-ingested since.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=FEATURES_KEY,
            name=LEAKAGE_CHECK_NAME,
            blocking=True,
            partitions_def=partitions_def,
            description="Features before a cutoff do not change when every later row is removed.",
        )
        def point_in_time_correct(
            context: dg.AssetCheckExecutionContext,
            artifact_store: ArtifactStoreResource,
            features: dict[str, pd.DataFrame],
        ) -> dg.AssetCheckResult:
            partition_key = context.partition_key
            stored = features[partition_key]
            recorded = _recorded_metadata(context, partition_key)
            spec = FeatureSetSpec.from_dict(recorded["feature_spec"])
            store = artifact_store.get_store()
            start, end = partition_window(context)
            snapshots = recorded["history_snapshots"]
            history = pd.concat(
                [store.get_frame(snapshots[key]) for key in sorted(snapshots)], ignore_index=True
            )
            by_service = _specs_by_service(recorded, spec, history)
            probe = probe_point_in_time(
                history,
                stored,
                lambda truncated: compute_features_by_service(
                    truncated,
                    {s: by_service[s] for s in truncated[SERVICE].astype(str).unique()},
                    output_start=start,
                    output_end=end,
                ),
                cutoffs=cutoffs,
                sample_rows=sample_rows,
                seed=int(start.timestamp()),
            )
            versions = sorted({item.version_id for item in by_service.values()})
            lines = [
                f"Recomputed features of {', '.join(md_code(v) for v in versions)} at "
                f"{len(probe.cutoffs)} cutoffs "
                f"({', '.join(str(cutoff.time()) for cutoff in probe.cutoffs)}), comparing "
                f"{probe.compared_rows} rows / {probe.compared_cells} cells.",
            ]
            if probe.mismatches:
                lines += ["", "Features that changed when the future was removed:"]
                lines += [
                    f"- {md_text(m['column'])} of {md_text(m['service'])} at "
                    f"{md_text(m['timestamp'])} (cutoff {md_text(m['cutoff'])}): "
                    f"stored {md_text(m['stored'])}, recomputed {md_text(m['recomputed'])}"
                    for m in probe.mismatches[:20]
                ]
            return dg.AssetCheckResult(
                passed=probe.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "summary": dg.MetadataValue.md("\n".join(lines)),
                    "mismatched_cells": dg.MetadataValue.float(float(len(probe.mismatches))),
                    "compared_cells": dg.MetadataValue.int(probe.compared_cells),
                    "feature_set_version": dg.MetadataValue.text(spec.version_id),
                },
            )

    return point_in_time_correct


def _specs_by_service(
    recorded: dict[str, dict[str, Any]], spec: FeatureSetSpec, history: pd.DataFrame
) -> dict[str, FeatureSetSpec]:
    """Each service's spec as the asset computed it; one spec for all when the materialization
    predates per-service feature sets."""
    services = sorted(history[SERVICE].astype(str).unique())
    chosen = recorded.get("feature_sets_by_service", {})
    specs = recorded.get("feature_specs", {})
    return {
        service: FeatureSetSpec.from_dict(specs[chosen[service]])
        if service in chosen and chosen[service] in specs
        else spec
        for service in services
    }


def _recorded_metadata(
    context: dg.AssetCheckExecutionContext, partition_key: str
) -> dict[str, dict[str, Any]]:
    """The spec and the snapshot versions the features partition was computed from."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FEATURES_KEY, asset_partitions=[partition_key]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    recorded: dict[str, dict[str, Any]] = {}
    for key in ("feature_sets_by_service", "feature_specs"):
        value = (
            materialization.metadata[key].value
            if materialization and key in (materialization.metadata)
            else None
        )
        if isinstance(value, dict):
            recorded[key] = value
    for key in ("feature_spec", "history_snapshots"):
        value = (
            materialization.metadata[key].value
            if materialization and key in materialization.metadata
            else None
        )
        if not isinstance(value, dict):
            raise dg.Failure(
                description=f"features[{partition_key}] has no recorded {key} to re-run"
            )
        recorded[key] = value
    return recorded
