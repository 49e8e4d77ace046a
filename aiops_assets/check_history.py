"""The one place the plugin reads asset-check execution history from the Dagster instance.

Sensors (what failed since the last tick), checks (earlier verdicts of the same check), the
promotion gate (did every trained partition pass) and the change log all need past check
executions. Dagster 1.13 has no public ``DagsterInstance`` method for them: its public reads
cover materializations, observations, asset records and runs, and the only instance-level check
read (``get_latest_asset_check_evaluation_record``) is neither public nor more than the latest.
The history therefore comes from the instance's event log, here and nowhere else, so that a
public API, when Dagster offers one, replaces a single function.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

PAGE_SIZE = 500


def check_execution_page(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    *,
    limit: int,
    before_id: int | None = None,
) -> Sequence[Any]:
    """Up to ``limit`` executions of one check, newest first, older than ``before_id`` if given.

    Each record has ``id``, ``key``, ``partition``, ``run_id``, ``status`` (PLANNED, SUCCEEDED,
    FAILED), ``event`` (the evaluation's log entry, if any) and ``create_timestamp``.
    """
    return instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=limit, cursor=before_id
    )


def check_execution_pages(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, *, page_size: int = PAGE_SIZE
) -> Iterator[Sequence[Any]]:
    """Every execution of one check, newest first, a page at a time; read lazily, so a caller
    that found what it needs stops reading."""
    before_id: int | None = None
    while True:
        records = check_execution_page(instance, check_key, limit=page_size, before_id=before_id)
        yield records
        if len(records) < page_size:
            return
        before_id = records[-1].id


def latest_execution_id(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> int:
    """The id of the newest execution of ``check_key``; 0 when it never ran."""
    records = check_execution_page(instance, check_key, limit=1)
    return int(records[0].id) if records else 0


def evaluation_of(record: Any) -> Any | None:
    """The evaluation an execution record carries (``passed``, ``severity``, ``metadata``), or
    None for a planned execution or one that raised: those say nothing about the data."""
    event = record.event
    if event is None or event.dagster_event is None:
        return None
    data = event.dagster_event.event_specific_data
    return data if data is not None and hasattr(data, "passed") else None
