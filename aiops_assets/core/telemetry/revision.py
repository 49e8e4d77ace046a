"""What a re-ingested partition changed: late rows only, or rows rewritten or dropped.

A partition is re-ingested when rows arrived after it was first ingested (a collector that
flushed late, a backfilled export). Its new snapshot is a new content-addressed version and the
old one stays in the store; this module says how the two differ, row by row on the contract's
key ``(service, timestamp)``, so the change log can tell *late data* (only new keys) from a
rewrite of history (a key whose values changed, or that disappeared), which is a different and
far more suspicious event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiops_assets.core.telemetry.contract import SERVICE, TIMESTAMP

__all__ = ["SnapshotRevision", "compare_snapshots"]

_KEY = [SERVICE, TIMESTAMP]


@dataclass(frozen=True)
class SnapshotRevision:
    """How a partition's new snapshot differs from the version it replaces.

    Attributes:
        previous: SHA-256 of the replaced version (still in the store).
        added: Per service, rows whose key the previous version did not have.
        removed: Rows of the previous version whose key is gone.
        changed: Rows present in both whose values differ (NaN equals NaN).
        columns_changed: The column sets differ, so every shared row counts as rewritten.
    """

    previous: str
    added: dict[str, int] = field(default_factory=dict)
    removed: int = 0
    changed: int = 0
    columns_changed: bool = False

    @property
    def rows_added(self) -> int:
        return sum(self.added.values())

    @property
    def late_only(self) -> bool:
        """True when the new version is the old one plus rows: nothing old was touched."""
        return (
            self.rows_added > 0
            and self.removed == 0
            and self.changed == 0
            and not self.columns_changed
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, the form the snapshot's materialization records and the change log reads."""
        return {
            "previous_sha256": self.previous,
            "rows_added": self.rows_added,
            "rows_added_by_service": dict(sorted(self.added.items())),
            "rows_removed": self.removed,
            "rows_changed": self.changed,
            "columns_changed": self.columns_changed,
            "late_data": self.late_only,
        }


def compare_snapshots(
    previous: pd.DataFrame, new: pd.DataFrame, *, previous_sha256: str
) -> SnapshotRevision:
    """Compare two telemetry frames of one partition on their ``(service, timestamp)`` keys.

    Both are canonical telemetry frames, whose keys are unique (the contract refuses duplicates).
    """
    old_rows = previous.set_index(_KEY)
    new_rows = new.set_index(_KEY)
    added_keys = new_rows.index.difference(old_rows.index)
    removed = len(old_rows.index.difference(new_rows.index))
    added = (
        pd.Series(added_keys.get_level_values(SERVICE)).value_counts().sort_index()
        if len(added_keys)
        else pd.Series(dtype="int64")
    )
    columns_changed = list(old_rows.columns) != list(new_rows.columns)
    shared = old_rows.index.intersection(new_rows.index)
    changed = len(shared) if columns_changed else _changed_rows(old_rows, new_rows, shared)
    return SnapshotRevision(
        previous=previous_sha256,
        added={str(service): int(count) for service, count in added.items()},
        removed=removed,
        changed=changed,
        columns_changed=columns_changed,
    )


def _changed_rows(old_rows: pd.DataFrame, new_rows: pd.DataFrame, shared: pd.Index) -> int:
    """Shared keys whose values differ in any column; a missing value equals a missing value."""
    if not len(shared):
        return 0
    before = old_rows.loc[shared]
    after = new_rows.loc[shared, before.columns]
    same = np.ones(len(shared), dtype=bool)
    for column in before.columns:
        a, b = before[column].to_numpy(), after[column].to_numpy()
        same &= (a == b) | (pd.isna(a) & pd.isna(b))
    return int((~same).sum())
