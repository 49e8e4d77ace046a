"""``telemetry_snapshot``: one immutable, content-addressed day of telemetry."""

import dagster as dg

from aiops_assets.assets._metadata import (
    artifact_metadata,
    frame_metadata,
    naive_utc,
    versioned_output,
)
from aiops_assets.core import telemetry
from aiops_assets.core.store import ArtifactRef
from aiops_assets.resources import ArtifactStoreResource, TelemetrySourceResource

SNAPSHOT_CODE_VERSION = "telemetry_snapshot-1"


def build_snapshot_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="telemetry_snapshot",
        partitions_def=partitions_def,
        code_version=SNAPSHOT_CODE_VERSION,
        io_manager_key="artifact_io_manager",
        group_name="aiops",
        kinds={"parquet"},
        description=(
            "One day of multi-service telemetry as canonical Parquet (sorted rows, fixed schema and "
            "compression), stored under its SHA-256, which is also its data version."
        ),
    )
    def telemetry_snapshot(
        context: dg.AssetExecutionContext,
        telemetry_source: TelemetrySourceResource,
        artifact_store: ArtifactStoreResource,
    ) -> dg.Output[ArtifactRef]:
        window = context.partition_time_window
        start, end = naive_utc(window.start), naive_utc(window.end)
        frame = telemetry_source.load_window(start.to_pydatetime(), end.to_pydatetime())
        if frame.empty:
            raise dg.Failure(
                description=f"source {telemetry_source.describe()} has no telemetry in [{start}, {end})"
            )
        frame = telemetry.canonical_telemetry(frame)
        ref = artifact_store.get_store().put_frame(frame)
        metrics = telemetry.metric_columns(frame)
        null_cells = int(frame[metrics].isna().sum().sum())
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **frame_metadata(frame),
                "source": dg.MetadataValue.text(telemetry_source.describe()),
                "seed": dg.MetadataValue.int(telemetry_source.seed),
                "first_timestamp": dg.MetadataValue.text(str(frame[telemetry.TIMESTAMP].min())),
                "last_timestamp": dg.MetadataValue.text(str(frame[telemetry.TIMESTAMP].max())),
                "services": dg.MetadataValue.int(int(frame[telemetry.SERVICE].nunique())),
                "null_cells": dg.MetadataValue.int(null_cells),
                "label_positive_rate": dg.MetadataValue.float(float(frame[telemetry.LABEL].mean())),
            },
        )

    return telemetry_snapshot
