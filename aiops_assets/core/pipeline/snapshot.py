"""One day of telemetry made a snapshot: replay refusal, the quality gate and quarantine."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from aiops_assets.core import telemetry
from aiops_assets.core.quality import (
    QualitySuite,
    QuarantineRecord,
    Severity,
    SuiteReport,
    quarantine,
    validate_frame,
    window_parameters,
)
from aiops_assets.core.store import ArtifactRef, ArtifactStore

SNAPSHOT_CODE_VERSION = "telemetry_snapshot-2"
SNAPSHOT_ASSET = "telemetry_snapshot"


@dataclass(frozen=True)
class GatedSnapshot:
    """A stored snapshot and its suite report; ``quarantined_as`` is set when it failed."""

    ref: ArtifactRef
    report: SuiteReport
    quarantined_as: str = ""
    message: str = ""

    @property
    def accepted(self) -> bool:
        return not self.quarantined_as


def replay_refusal(
    frame: pd.DataFrame,
    previous: pd.DataFrame,
    *,
    previous_key: str,
    previous_sha256: str,
    source: str,
) -> str:
    """Why ``frame`` is refused as a replay of the previous day's snapshot, or ''.

    An earlier export re-sent under new dates repeats its values exactly with every timestamp
    shifted; the file loader catches that inside one folder, this whatever the source.
    """
    replayed = telemetry.replayed_services(frame, previous)
    if not replayed:
        return ""
    names = ", ".join(f"{item.service!r} ({item.rows} rows)" for item in replayed)
    return (
        f"telemetry from {source} replays {SNAPSHOT_ASSET}[{previous_key}] (artifact "
        f"{previous_sha256[:16]}): {names} repeat its values exactly with every timestamp "
        f"shifted by {replayed[0].shift}; an earlier export re-sent under new dates is "
        "refused, and the partition keeps its last good snapshot"
    )


def gate_snapshot(
    store: ArtifactStore,
    frame: pd.DataFrame,
    suite: QualitySuite,
    *,
    partition: str | None,
    window: tuple[pd.Timestamp, pd.Timestamp],
    source: str,
) -> GatedSnapshot:
    """Store the frame, judge it by ``suite`` and quarantine it when an ERROR expectation fails.

    Stored before it is judged: a rejected snapshot is kept (in quarantine), never lost.
    """
    ref = store.put_frame(frame)
    report = validate_frame(frame, suite, parameters=window_parameters(*window))
    if report.passed(Severity.ERROR):
        return GatedSnapshot(ref=ref, report=report)
    subject = f"{SNAPSHOT_ASSET}[{partition}] from {source} (artifact {ref.sha256[:16]})"
    message = report.failure_message(Severity.ERROR, subject=subject)
    filed_as = quarantine(
        store,
        QuarantineRecord(
            asset=SNAPSHOT_ASSET,
            partition=partition,
            artifact=ref,
            report=report.to_dict(),
            source=source,
            message=message,
        ),
    )
    return GatedSnapshot(ref=ref, report=report, quarantined_as=filed_as, message=message)
