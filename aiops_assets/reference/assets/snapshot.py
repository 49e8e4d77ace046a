"""``telemetry_snapshot``: one immutable, content-addressed, quality-gated day of telemetry."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from aiops_assets import ArtifactRefIOManager, ArtifactStoreResource
from aiops_assets.checks.quality import QualityGate
from aiops_assets.core import quality as core_quality
from aiops_assets.core import telemetry
from aiops_assets.core.code_fingerprint import FINGERPRINT_KEY, code_fingerprint
from aiops_assets.core.pipeline.snapshot import SNAPSHOT_CODE_VERSION, gate_snapshot, replay_refusal
from aiops_assets.core.store import ArtifactRef, ArtifactStore, StoreError
from aiops_assets.core.telemetry import contract as telemetry_contract
from aiops_assets.core.telemetry.revision import compare_snapshots
from aiops_assets.keys import SNAPSHOT_KEY
from aiops_assets.metadata import (
    NULL_FRACTION_PREFIX,
    REVISION_KEY,
    artifact_metadata,
    config_hash,
    frame_metadata,
    partition_window,
    versioned_output,
)
from aiops_assets.resources import TelemetrySourceResource

__all__ = ["SNAPSHOT_CODE_VERSION", "SNAPSHOT_FRESHNESS", "SnapshotConfig", "build_snapshot_asset"]

# Daily ingest: a day without a new snapshot is worth a warning, two are a failure.
SNAPSHOT_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)
)


class SnapshotConfig(dg.Config):
    """How the collectors of each service report, so every snapshot is in the contract's units.

    ``unit_scale`` maps a service to a factor per metric column, e.g.
    ``{"checkout": {"latency_p99_ms": 1000}}`` when checkout's collector reports seconds. It is
    deployment configuration: its hash is recorded with each snapshot, so changing it shows in
    the change log (and in an incident report) with the exact diff.
    """

    unit_scale: dict[str, dict[str, float]] = Field(default_factory=dict)


def build_snapshot_asset(
    partitions_def: dg.PartitionsDefinition, suite_path: str | Path
) -> dg.AssetsDefinition:
    gate = QualityGate(SNAPSHOT_KEY, suite_path, partitions_def=partitions_def)

    @dg.asset(
        key=SNAPSHOT_KEY,
        partitions_def=partitions_def,
        code_version=SNAPSHOT_CODE_VERSION,
        io_manager_key="artifact_io_manager",
        group_name="aiops",
        kinds={"parquet"},
        check_specs=gate.specs,
        # A snapshot that fails an ERROR expectation yields no output: it never becomes the
        # partition's current version, and nothing downstream runs on it.
        output_required=False,
        freshness_policy=SNAPSHOT_FRESHNESS,
        description=(
            "One day of multi-service telemetry as canonical Parquet (sorted rows, fixed schema and "
            "compression), stored under its SHA-256, which is also its data version. Validated "
            f"by suite {gate.suite.version_id} before it is accepted; a failing day is quarantined."
        ),
    )
    def telemetry_snapshot(
        context: dg.AssetExecutionContext,
        config: SnapshotConfig,
        telemetry_source: TelemetrySourceResource,
        artifact_store: ArtifactStoreResource,
    ) -> Iterator[dg.Output[ArtifactRef] | dg.AssetCheckResult]:
        start, end = partition_window(context)
        source = telemetry_source.describe()
        try:
            # Every source kind returns a canonical frame (contract dtypes, sorted).
            frame = telemetry_source.load_window(start, end)
        except telemetry.TelemetryFormatError as error:
            raise dg.Failure(
                description=f"telemetry from {source} is malformed: {error}"
            ) from error
        try:
            frame = telemetry.apply_unit_scale(frame, config.unit_scale)
        except ValueError as error:
            raise dg.Failure(description=f"telemetry_snapshot config: {error}") from error
        if frame.empty:
            raise dg.Failure(description=f"source {source} has no telemetry in [{start}, {end})")
        store = artifact_store.get_store()
        _refuse_a_replay(context, partitions_def, store, frame, source)
        gated = gate_snapshot(
            store,
            frame,
            gate.suite,
            partition=context.partition_key,
            window=(start, end),
            source=source,
        )
        ref, report = gated.ref, gated.report
        if not gated.accepted:
            context.log.error(
                f"{gated.message}. Quarantined as {gated.quarantined_as} in {store.root}; the "
                "partition keeps its last good snapshot."
            )
            yield from gate.results(
                report, {"quarantined_as": dg.MetadataValue.text(gated.quarantined_as)}
            )
            return
        metrics = telemetry.metric_columns(frame)
        yield versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **_revision_metadata(context, store, ref, frame),
                **frame_metadata(frame),
                "source": dg.MetadataValue.text(source),
                FINGERPRINT_KEY: dg.MetadataValue.text(
                    code_fingerprint([telemetry_contract, core_quality])
                ),
                "seed": dg.MetadataValue.int(telemetry_source.seed),
                "first_timestamp": dg.MetadataValue.text(str(frame[telemetry.TIMESTAMP].min())),
                "last_timestamp": dg.MetadataValue.text(str(frame[telemetry.TIMESTAMP].max())),
                "services": dg.MetadataValue.int(int(frame[telemetry.SERVICE].nunique())),
                "null_cells": dg.MetadataValue.int(int(frame[metrics].isna().sum().sum())),
                # Per column, so a collector that starts dropping one metric shows as that
                # metric in the change log and the incident report, not as "some nulls".
                **{
                    f"{NULL_FRACTION_PREFIX}{column}": dg.MetadataValue.float(
                        float(frame[column].isna().mean())
                    )
                    for column in metrics
                },
                "label_positive_rate": dg.MetadataValue.float(float(frame[telemetry.LABEL].mean())),
                "quality_suite": dg.MetadataValue.text(gate.suite.version_id),
                "config_hash": dg.MetadataValue.text(config_hash(config)),
            },
        )
        yield from gate.results(report)

    return telemetry_snapshot


def _refuse_a_replay(
    context: dg.AssetExecutionContext,
    partitions_def: dg.PartitionsDefinition,
    store: ArtifactStore,
    frame: pd.DataFrame,
    source: str,
) -> None:
    """Refuse a day that repeats the previous partition's snapshot, value for value, time-shifted.

    The file loader already catches a replay inside one folder; this catches it whatever the
    source (a folder that only ever holds the newest day, any other source kind). Without a
    stored previous snapshot there is nothing to compare, and a previous snapshot the store
    cannot read is reported, not allowed to block today's data.
    """
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return
    window = context.partition_time_window
    previous_key = (window.start - (window.end - window.start)).strftime(partitions_def.fmt)
    ref = store.get_ref(ArtifactRefIOManager.ref_name(SNAPSHOT_KEY, previous_key))
    if ref is None:
        return
    try:
        previous = store.get_frame(ref)
    except StoreError as error:
        context.log.warning(f"replay check skipped: previous snapshot unreadable: {error}")
        return
    refusal = replay_refusal(
        frame, previous, previous_key=previous_key, previous_sha256=ref.sha256, source=source
    )
    if refusal:
        raise dg.Failure(description=refusal)


def _revision_metadata(
    context: dg.AssetExecutionContext, store: ArtifactStore, ref: ArtifactRef, frame: pd.DataFrame
) -> dict[str, dg.MetadataValue]:
    """On a re-ingest with different data, how the new version differs from the one it replaces.

    The partition's ref still points at its current version here (the IO manager moves it only
    after this output), so the comparison is with exactly what downstream last read. Rows that
    only arrived late are told apart from rows rewritten or dropped; the change log says "late
    data (+N rows)" only for the first. The old version is never touched: it stays in the store
    under its own hash. A first ingest, an identical re-ingest or an unreadable old version
    (reported) record nothing.
    """
    partition = context.partition_key if context.has_partition_key else None
    current = store.get_ref(ArtifactRefIOManager.ref_name(SNAPSHOT_KEY, partition))
    if current is None or current.sha256 == ref.sha256:
        return {}
    try:
        previous = store.get_frame(current)
    except StoreError as error:
        context.log.warning(f"re-ingest not compared: the replaced snapshot is unreadable: {error}")
        return {}
    revision = compare_snapshots(previous, frame, previous_sha256=current.sha256)
    kind = "late data" if revision.late_only else "a revision"
    context.log.info(
        f"telemetry_snapshot[{partition}] re-ingested as {kind}: +{revision.rows_added} rows, "
        f"{revision.changed} changed, {revision.removed} removed; version {current.sha256[:12]} "
        "stays in the store"
    )
    return {REVISION_KEY: dg.MetadataValue.json(revision.to_dict())}
