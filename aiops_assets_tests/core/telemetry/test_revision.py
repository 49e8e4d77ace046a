"""Comparing a partition's re-ingested snapshot with the version it replaces."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops_assets.core import telemetry
from aiops_assets.core.telemetry.revision import compare_snapshots

PREVIOUS = "0" * 64


def _frame(hours: int, services: tuple[str, ...] = ("api", "db")) -> pd.DataFrame:
    stamps = pd.date_range("2026-01-05", periods=hours * 12, freq="5min")
    rows = [
        {"timestamp": stamp, "service": service, "cpu_pct": 10.0 + index, "label": 0}
        for index, stamp in enumerate(stamps)
        for service in services
    ]
    return telemetry.canonical_telemetry(pd.DataFrame(rows))


def test_rows_that_only_arrived_late_are_late_data_counted_per_service() -> None:
    old, new = _frame(18), _frame(24)
    revision = compare_snapshots(old, new, previous_sha256=PREVIOUS)
    assert revision.added == {"api": 72, "db": 72}
    assert (revision.rows_added, revision.changed, revision.removed) == (144, 0, 0)
    assert revision.late_only
    assert revision.to_dict()["late_data"] is True
    assert revision.to_dict()["previous_sha256"] == PREVIOUS


def test_a_late_service_is_late_data_too() -> None:
    revision = compare_snapshots(_frame(6, ("api",)), _frame(6), previous_sha256=PREVIOUS)
    assert revision.added == {"db": 72} and revision.late_only


def test_a_changed_or_dropped_row_is_not_late_data() -> None:
    old = _frame(18)
    changed = _frame(24)
    changed["cpu_pct"] = changed["cpu_pct"].where(changed.index != 0, -1.0)
    revision = compare_snapshots(old, changed, previous_sha256=PREVIOUS)
    assert (revision.rows_added, revision.changed, revision.removed) == (144, 1, 0)
    assert not revision.late_only
    dropped = _frame(24).iloc[1:].reset_index(drop=True)
    revision = compare_snapshots(old, dropped, previous_sha256=PREVIOUS)
    assert (revision.changed, revision.removed) == (0, 1) and not revision.late_only


def test_missing_values_that_stay_missing_are_unchanged_and_a_new_one_is_a_change() -> None:
    old = _frame(2)
    old.loc[3, "cpu_pct"] = np.nan
    new = pd.concat([old, _frame(3).iloc[len(old) :]], ignore_index=True)
    assert compare_snapshots(old, new, previous_sha256=PREVIOUS).late_only
    new.loc[4, "cpu_pct"] = np.nan
    assert compare_snapshots(old, new, previous_sha256=PREVIOUS).changed == 1


def test_a_new_column_rewrites_every_shared_row_and_equal_frames_add_nothing() -> None:
    old = _frame(2)
    wider = _frame(3).assign(memory_pct=1.0)
    revision = compare_snapshots(
        old, telemetry.canonical_telemetry(wider), previous_sha256=PREVIOUS
    )
    assert revision.columns_changed and revision.changed == len(old)
    assert not revision.late_only
    same = compare_snapshots(old, old.copy(), previous_sha256=PREVIOUS)
    assert (same.rows_added, same.changed, same.removed, same.late_only) == (0, 0, 0, False)
