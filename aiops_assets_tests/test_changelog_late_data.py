"""The change log's word for a re-ingested partition: "late data" only when rows were only added.

Snapshot versions are reported to the instance as the snapshot asset records them (data version
tag, row count, the ``revision`` its re-ingest comparison wrote), so each rule is checked on its
own, without a pipeline run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.changelog import collect_changes
from aiops_assets.core.incidents import Change
from aiops_assets.core.ledger import Ledger
from aiops_assets.keys import SNAPSHOT_KEY
from aiops_assets.metadata import REVISION_KEY
from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings

DAY = "2026-01-07"
KEY = b"late-data-changelog-key-" + b"k" * 8


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=KEY)
    yield opened
    opened.dispose()


def _version(name: str) -> str:
    return (name * 64)[:64]


def _revision(previous: str, *, added: int = 0, changed: int = 0, removed: int = 0) -> Any:
    return dg.MetadataValue.json(
        {
            "previous_sha256": _version(previous),
            "rows_added": added,
            "rows_added_by_service": {"api": added} if added else {},
            "rows_removed": removed,
            "rows_changed": changed,
            "columns_changed": False,
            "late_data": added > 0 and changed == 0 and removed == 0,
        }
    )


def _report(
    instance: dg.DagsterInstance, version: str, rows: int, revision: Any | None = None
) -> None:
    metadata: dict[str, Any] = {"dagster/row_count": dg.MetadataValue.int(rows)}
    if revision is not None:
        metadata[REVISION_KEY] = revision
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=SNAPSHOT_KEY,
            partition=DAY,
            metadata=metadata,
            tags={"dagster/data_version": _version(version)},
        )
    )


def _snapshot_changes(
    instance: dg.DagsterInstance, ledger: Ledger, settings: PipelineSettings
) -> list[Change]:
    changes = collect_changes(instance, ledger, build_definitions(settings))
    return [change for change in changes if change.subject == SNAPSHOT_KEY.to_user_string()]


def test_only_added_rows_against_the_replaced_version_are_late_data(
    instance: dg.DagsterInstance, ledger: Ledger, small_settings: PipelineSettings
) -> None:
    _report(instance, "a", 1296)
    _report(instance, "b", 1728, _revision("a", added=432))
    # Rows added but one rewritten: a revision of history, never "late data".
    _report(instance, "c", 1738, _revision("b", added=10, changed=1))
    # A comparison made against another version than the one replaced says nothing.
    _report(instance, "d", 1800, _revision("a", added=504))
    # More rows with no comparison at all (a source that cannot say): plain new data.
    _report(instance, "e", 1900)

    first, late, rewritten, unrelated, plain = _snapshot_changes(instance, ledger, small_settings)

    assert first.summary == f"telemetry_snapshot[{DAY}]: new data (1296 rows)"
    assert late.summary == f"telemetry_snapshot[{DAY}]: late data (+432 rows) (1728 rows)"
    assert (late.before, late.after) == (_version("a"), _version("b"))
    assert late.details["late_rows"] == 432
    assert late.details["late_rows_by_service"] == {"api": 432}
    assert "late data" not in rewritten.summary
    assert "+10 rows, 1 rows changed, 1738 rows (+10)" in rewritten.summary
    assert "late_rows" not in rewritten.details
    for change in (unrelated, plain):
        assert "late data" not in change.summary
        assert change.summary.startswith(f"telemetry_snapshot[{DAY}]: data ")
    assert "(1800 rows (+62))" in unrelated.summary
