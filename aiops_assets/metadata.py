"""Metadata shared by the reference assets, so every asset reports lineage facts the same way."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import warnings
from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.core.store import ArtifactRef
from aiops_assets.core.telemetry import naive_utc

# Per-column null fraction of an asset's data, e.g. ``null_fraction/latency_p99_ms``.
NULL_FRACTION_PREFIX = "null_fraction/"
# Versions of the libraries an asset's computation depends on, as JSON metadata.
PACKAGES_KEY = "packages"
# How a re-ingested partition differs from the version it replaced (late rows, rewrites), as JSON
# (core.telemetry.revision); the change log reads it to say "late data (+N rows)".
REVISION_KEY = "revision"


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of the given distributions; an upgrade then shows as a change."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def config_hash(config: dg.Config) -> str:
    """SHA-256 of the run config an asset ran with; equal configs hash equally across runs."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def artifact_metadata(ref: ArtifactRef) -> dict[str, Any]:
    return {
        "sha256": dg.MetadataValue.text(ref.sha256),
        "size_bytes": dg.MetadataValue.int(ref.size),
        "media_type": dg.MetadataValue.text(ref.media_type),
    }


def frame_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    """Row count and column schema, under the keys the Dagster UI understands."""
    columns = [
        dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()
    ]
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": dg.TableSchema(columns=columns),
    }


def partition_window(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The partition's ``[start, end)`` as naive UTC, the form telemetry timestamps take."""
    window = context.partition_time_window
    return naive_utc(window.start), naive_utc(window.end)


def table_metadata(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> dg.MetadataValue:
    """A ``MetadataValue.table`` from plain dict rows and (name, type) column pairs."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns]),
    )


def float_metrics(metrics: dict[str, float], prefix: str = "") -> dict[str, dg.MetadataValue]:
    """Floats go in float metadata so the UI plots them over materializations."""
    return {
        f"{prefix}{name}": dg.MetadataValue.float(float(value)) for name, value in metrics.items()
    }


def versioned_output(ref: ArtifactRef, metadata: dict[str, Any]) -> dg.Output[ArtifactRef]:
    """The asset's output, with the artifact's SHA-256 as its Dagster data version.

    ``Output(data_version=...)`` is marked beta in Dagster 1.13, yet it is the one way for an asset
    that hands its value to an IO manager to declare a content-derived data version; its notice
    is muted here, in the one place that uses it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(ref, data_version=dg.DataVersion(ref.sha256), metadata=metadata)


def latest_materialization_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None = None
) -> dict[str, Any]:
    """Plain values of the latest materialization's metadata (empty when never materialized).

    Assets pass each other artifact refs only; facts an upstream asset recorded about itself (its
    feature-set version, the day it was trained until) are read back from its materialization.
    """
    records_filter = dg.AssetRecordsFilter(
        asset_key=asset_key, asset_partitions=None if partition is None else [partition]
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {
        name: getattr(value, "value", value)
        for name, value in records[0].asset_materialization.metadata.items()
    }
