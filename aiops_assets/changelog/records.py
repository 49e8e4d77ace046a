"""What the change log reads records with: materializations reduced to plain values, and the
small helpers every part of the log shares (UTC bounds, labels, leaf diffs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from aiops_assets.metadata import NULL_FRACTION_PREFIX

DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
POLICY_SHA256 = "policy_sha256"
# Assets whose capsules are found by run when a materialization does not name its capsule (runs
# recorded before the capsule id went into the metadata).
CAPSULE_ASSETS = ("training_set", "candidate_model")
# Numeric metadata that identifies rather than describes the data: not part of a distribution.
_NOT_DISTRIBUTION = frozenset({"seed", "size_bytes"})
_PAGE = 500
MODEL_ASSET = dg.AssetKey("anomaly_scores")
PERFORMANCE_CHECK = dg.AssetCheckKey(MODEL_ASSET, "performance")


@dataclass(frozen=True)
class _Materialization:
    """One materialization reduced to what a comparison needs, metadata as plain values."""

    storage_id: int
    at: datetime
    run_id: str
    partition: str | None
    tags: Mapping[str, str]
    metadata: Mapping[str, Any]

    def tag(self, name: str) -> str | None:
        return self.tags.get(name)

    def text(self, name: str) -> str | None:
        value = self.metadata.get(name)
        return None if value is None else str(value)


# --- reading materializations ---------------------------------------------------------------


def _materializations(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    after: float | None,
    before: float | None,
) -> Iterator[_Materialization]:
    """Oldest first, a page at a time (the asset-key index; never the whole event log)."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=asset_key, after_timestamp=after, before_timestamp=before
    )
    cursor: str | None = None
    while True:
        result = instance.fetch_materializations(
            records_filter, limit=_PAGE, cursor=cursor, ascending=True
        )
        for record in result.records:
            materialization = _reduce(record)
            if materialization is not None:
                yield materialization
        if not result.has_more or not result.records:
            return
        cursor = result.cursor


def _previous(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    before_storage_id: int,
    partition: str | None = None,
) -> _Materialization | None:
    """The latest materialization before a storage id: the baseline a window starts from."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=asset_key,
        asset_partitions=None if partition is None else [partition],
        before_storage_id=before_storage_id,
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    return _reduce(records[0]) if records else None


def _reduce(record: Any) -> _Materialization | None:
    materialization = record.asset_materialization
    if materialization is None:
        return None
    return _Materialization(
        storage_id=int(record.storage_id),
        at=datetime.fromtimestamp(float(record.timestamp), UTC),
        run_id=str(record.run_id),
        partition=materialization.partition,
        tags=dict(materialization.tags or {}),
        metadata={name: _plain(value) for name, value in materialization.metadata.items()},
    )


def _columns(metadata: Mapping[str, Any]) -> list[str] | None:
    schema = metadata.get(COLUMN_SCHEMA)
    columns = getattr(schema, "columns", None)
    return None if columns is None else [str(column.name) for column in columns]


def _touched_columns(before: _Materialization, after: _Materialization) -> tuple[str, ...]:
    """Columns added or removed between two materializations; empty when either has no schema."""
    old, new = _columns(before.metadata), _columns(after.metadata)
    if old is None or new is None:
        return ()
    return tuple(sorted(set(old) ^ set(new)))


# A rise in a column's null fraction smaller than this is noise, not a broken collector.
NULL_RISE = 0.01


def _null_fraction_rises(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Columns whose share of nulls rose noticeably between two materializations."""
    risen = []
    for name, value in sorted(after.items()):
        if not name.startswith(NULL_FRACTION_PREFIX) or not isinstance(value, int | float):
            continue
        previous = before.get(name)
        if isinstance(previous, int | float) and value - previous >= NULL_RISE:
            risen.append(name.removeprefix(NULL_FRACTION_PREFIX))
    return risen


def _columns_named_in(config_paths: Iterable[str], columns: Sequence[str]) -> list[str]:
    """The asset's columns that a changed config path names as one of its segments."""
    known = set(columns)
    named: list[str] = []
    for path in config_paths:
        for segment in str(path).replace("[", ".").replace("]", "").split("."):
            if segment in known and segment not in named:
                named.append(segment)
    return named


def _distribution(metadata: Mapping[str, Any]) -> dict[str, float | int]:
    """The numeric facts a materialization records about its data (rows, rates, counts)."""
    summary: dict[str, float | int] = {}
    for name, value in sorted(metadata.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if name == ROW_COUNT:
            summary["rows"] = value
        elif not name.startswith("dagster/") and name not in _NOT_DISTRIBUTION:
            summary[name] = value
    return summary


# --- small helpers ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _utc(moment: datetime | None) -> datetime | None:
    """Naive bounds are read as UTC, the zone every record here is kept in."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timestamp(moment: datetime | None) -> float | None:
    utc = _utc(moment)
    return None if utc is None else utc.timestamp()


def _label(asset_key: dg.AssetKey, partition: str | None) -> str:
    name = asset_key.to_user_string()
    return f"{name}[{partition}]" if partition else name


def _diff(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf differences between two JSON-like values, as (dotted path, before, after)."""
    # A section that appears (or disappears) is compared leaf by leaf, so the diff names what
    # it sets (``unit_scale.checkout.error_rate``), not just the section.
    if isinstance(before, Mapping) and after is None:
        after = {}
    if isinstance(after, Mapping) and before is None:
        before = {}
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found: list[tuple[str, Any, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}.{key}" if path else str(key)
            found += _diff(before.get(key), after.get(key), child)
        return found
    return [] if before == after else [(path or "(root)", before, after)]
