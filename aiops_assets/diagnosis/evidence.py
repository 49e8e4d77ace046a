"""Turning the store's partitions into evidence: what changed in the data, and label health.

The change log knows a partition got new data; this module reads the partitions themselves (the
failing ones against the last good ones) and rewrites each snapshot data change as one change per
service that moved, with its findings in words, so a data regression can be ranked, replayed and
named. Broken labels become a ``labels`` suspect of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from aiops_assets.core.data_changes import DataCharacterization, characterize
from aiops_assets.core.incidents import Change, IncidentWindow
from aiops_assets.core.incidents.evidence import FAULT_FINDINGS
from aiops_assets.core.label_health import LabelHealth, assess_labels
from aiops_assets.core.models import ALERT
from aiops_assets.core.store import ArtifactStore
from aiops_assets.core.telemetry import LABEL
from aiops_assets.io import asset_ref_name
from aiops_assets.keys import FEATURES_KEY, SCORES_KEY, SNAPSHOT_KEY

# How many known-good partitions a failing one is compared with: a week, so the weekly cycle is
# part of the measured day-to-day noise (with 3, clean days gave 0.6 false findings at the
# snapshot and 3.75 at the features; with 7, none: core/data_changes' held-out seeds).
REFERENCE_PARTITIONS = 7
# The first days, for a degradation that crept into the last good ones.
BASELINE_PARTITIONS = 3
# Label evidence is discounted this much when the feed itself broke in the failing partitions: a
# unit change makes the model alert on rows nobody would label an incident.
_LABELS_WITH_BROKEN_FEED = 0.3


@dataclass
class DataEvidence:
    """What the partitions say: characterizations per layer and partition, and label health."""

    failing: list[str]
    references: list[str]
    characterizations: list[DataCharacterization] = field(default_factory=list)
    label_health: LabelHealth | None = None

    def snapshot_findings(self, partition: str) -> DataCharacterization | None:
        for item in self.characterizations:
            if item.layer == "snapshot" and item.partition == partition:
                return item
        return None

    def feed_broke(self) -> bool:
        return any(
            finding.kind in FAULT_FINDINGS
            for item in self.characterizations
            if item.layer == "snapshot"
            for finding in item.findings
        )


def _frame(store: ArtifactStore, asset_key: Any, partition: str) -> pd.DataFrame | None:
    ref = store.get_ref(asset_ref_name(asset_key, partition))
    return None if ref is None else store.get_frame(ref)


def incident_partitions(
    store: ArtifactStore, window: IncidentWindow, known: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The failing partitions (after the last good one, up to the first bad) and the good ones
    they are compared with (the last good and those before it that have a snapshot)."""
    first_bad = window.first_bad.partition
    last_good = window.last_good.partition if window.last_good else None
    ordered = sorted(set(known) | {first_bad})
    failing = [p for p in ordered if (last_good is None or p > last_good) and p <= first_bad]
    before = [p for p in ordered if p <= (last_good or "") and p < failing[0]]
    references = [
        p for p in reversed(before) if store.get_ref(asset_ref_name(SNAPSHOT_KEY, p)) is not None
    ][:REFERENCE_PARTITIONS]
    return failing[-2:], references


def baseline_partitions(store: ArtifactStore, known: Sequence[str], before: str) -> list[str]:
    """The earliest partitions with a snapshot: the days the model learned from, the reference
    for a change that crept in slowly (the last good days already hold part of it)."""
    return [
        p
        for p in sorted(known)
        if p < before and store.get_ref(asset_ref_name(SNAPSHOT_KEY, p)) is not None
    ][:BASELINE_PARTITIONS]


def measure_data(
    store: ArtifactStore, window: IncidentWindow, known: Sequence[str]
) -> DataEvidence:
    """Characterize the failing partitions at the snapshot and the feature layer, and the labels."""
    failing, references = incident_partitions(store, window, known)
    evidence = DataEvidence(failing=failing, references=references)
    if not references:
        return evidence
    for asset_key, layer in ((SNAPSHOT_KEY, "snapshot"), (FEATURES_KEY, "features")):
        refs = {p: f for p in references if (f := _frame(store, asset_key, p)) is not None}
        for partition in failing:
            current = _frame(store, asset_key, partition)
            if current is None or not refs:
                continue
            evidence.characterizations.append(
                characterize(current, refs, layer=layer, partition=partition)
            )
    _against_baseline(store, evidence, known)
    evidence.label_health = _label_health(store, window.first_bad.partition, references)
    return evidence


def _against_baseline(store: ArtifactStore, evidence: DataEvidence, known: Sequence[str]) -> None:
    """When no service moved against the last good days, compare with the first days: a slow
    degradation looks like day-to-day noise against days that already drifted."""
    for partition in evidence.failing:
        recent = evidence.snapshot_findings(partition)
        if recent is None or recent.services():
            continue
        baseline = baseline_partitions(store, known, partition)
        refs = {p: f for p in baseline if (f := _frame(store, SNAPSHOT_KEY, p)) is not None}
        current = _frame(store, SNAPSHOT_KEY, partition)
        if len(refs) < 2 or current is None:
            continue
        found = characterize(current, refs, layer="snapshot", partition=partition)
        if found.services():
            evidence.characterizations.remove(recent)
            evidence.characterizations.append(found)


def _label_health(
    store: ArtifactStore, partition: str, references: Sequence[str], scores_key: Any = SCORES_KEY
) -> LabelHealth | None:
    current = _frame(store, scores_key, partition)
    if current is None or LABEL not in current or ALERT not in current:
        return None
    refs = {}
    for key in references:
        frame = _frame(store, scores_key, key)
        if frame is not None and LABEL in frame and ALERT in frame:
            refs[key] = (frame[LABEL].to_numpy(dtype=float), frame[ALERT].to_numpy(dtype=float))
    if not refs:
        return None
    return assess_labels(
        current[LABEL].to_numpy(dtype=float),
        current[ALERT].to_numpy(dtype=float),
        refs,
        partition=partition,
    )


def characterized_changes(
    changes: Sequence[Change],
    evidence: DataEvidence,
    implicated: Sequence[str] = (),
    data_subject: str = SNAPSHOT_KEY.to_user_string(),
) -> list[Change]:
    """The change log with each failing snapshot refresh split into the services that moved
    (what, where, by how much, in words), the services the failed check ``implicated`` whose
    columns did not move beyond their noise (still worth a replay: a drift too slow or too
    sparse to show in a day's distribution can still page), and the routine rest; broken
    labels added. ``data_subject`` is the asset whose rows the model serves (the snapshot in
    the reference pipeline, a host's own asset otherwise)."""
    out: list[Change] = []
    for change in changes:
        found = (
            evidence.snapshot_findings(change.partition)
            if change.kind == "data" and change.subject == data_subject and change.partition
            else None
        )
        quiet = _quiet_implicated(found, implicated, evidence)
        if found is None or not (found.findings or quiet):
            out.append(change)
            continue
        out += _per_service(change, found, quiet)
    labels = _labels_change(changes, evidence, data_subject)
    if labels is not None:
        out.append(labels)
    return sorted(out, key=lambda c: (c.at, c.kind, c.subject, str(c.details.get("service", ""))))


def _quiet_implicated(
    found: DataCharacterization | None, implicated: Sequence[str], evidence: DataEvidence
) -> list[str]:
    """The implicated services of the first failing partition in which nothing moved."""
    if found is None or not evidence.failing or found.partition != evidence.failing[-1]:
        return []
    moved = set(found.services())
    return [service for service in dict.fromkeys(implicated) if service not in moved]


def _per_service(
    change: Change, found: DataCharacterization, quiet: Sequence[str] = ()
) -> list[Change]:
    """One change per service that moved; services that moved alike (the same kinds of change
    on the same columns: one collector upgrade reaching several) are one change, replayed
    together, since reverting one of them alone cannot show what the change did. Each quiet
    implicated service is a change of its own, without findings."""
    groups: dict[tuple[tuple[str, str | None], ...], list[str]] = {}
    for service in found.services():
        signature = tuple(sorted({(f.kind, f.column) for f in found.for_service(service)}))
        groups.setdefault(signature, []).append(service)
    split = [_service_change(change, found, services) for services in groups.values()]
    split += [_implicated_change(change, found, service) for service in quiet]
    wide = [f for f in found.findings if f.service is None]
    rest_details = {**change.details, "findings": [f.to_dict() for f in wide]}
    if wide:
        rest_details["headline"] = "; ".join(f.words for f in wide[:3])
    return [*split, replace(change, details=rest_details)]


def _service_change(change: Change, found: DataCharacterization, services: list[str]) -> Change:
    findings = [f for service in services for f in found.for_service(service)]
    findings.sort(key=lambda f: -f.effect)
    headline = "; ".join(
        [_since(findings[0].words, found.partition), *(f.words for f in findings[1:3])]
    )
    if len(services) > 1:
        headline = f"{len(services)} services alike ({', '.join(services)}): {headline}"
    columns = tuple(dict.fromkeys(f.column for f in findings if f.column))
    return replace(
        change,
        summary=f"{change.subject}[{change.partition}] {headline}",
        features=tuple(dict.fromkeys([*change.features, *columns])),
        details={
            **change.details,
            "service": services[0],
            "services": services,
            # The partition the service's data is compared with, and replaced by in a replay.
            "donor": max(found.references),
            "findings": [f.to_dict() for f in findings],
            "headline": headline,
        },
    )


def _implicated_change(change: Change, found: DataCharacterization, service: str) -> Change:
    headline = (
        f"{service}: the failed check implicates it; none of its columns moved beyond their "
        f"day-to-day noise since {found.partition}"
    )
    return replace(
        change,
        summary=f"{change.subject}[{change.partition}] {headline}",
        details={
            **change.details,
            "service": service,
            "services": [service],
            "donor": max(found.references),
            "findings": [],
            "implicated": True,
            "headline": headline,
        },
    )


def _since(words: str, since: str) -> str:
    head, paren, tail = words.partition(" (")
    return f"{head} since {since}{paren}{tail}"


def _labels_change(
    changes: Sequence[Change], evidence: DataEvidence, data_subject: str
) -> Change | None:
    health = evidence.label_health
    if health is None or not health.problems or health.evidence <= 0:
        return None
    partition = health.partition
    arrived = [
        c
        for c in changes
        if c.kind == "data" and c.subject == data_subject and c.partition == partition
    ]
    strength = health.evidence
    caveat = ""
    labels_present = (
        health.label_rate is not None
        and bool(health.reference_label_rate)
        and health.label_rate > 0.5 * float(health.reference_label_rate or 0.0)
    )
    if labels_present and health.problems == ("collapse",):
        # Positives at their usual rate, elsewhere than the alerts: the model's alerts moved,
        # not the labels.
        return None
    if evidence.feed_broke():
        strength *= _LABELS_WITH_BROKEN_FEED
        caveat = "; discounted: the feed itself changed, which explains alerts on unlabeled rows"
    anchor = arrived[0] if arrived else None
    return Change(
        kind="labels",
        subject=data_subject,
        at=anchor.at if anchor else _fallback_time(changes),
        summary=f"labels of {partition}: {health.words}",
        partition=partition,
        run_id=anchor.run_id if anchor else None,
        lineage_distance=anchor.lineage_distance if anchor else None,
        details={
            "evidence": strength,
            "words": f"{health.words}{caveat}",
            "headline": f"labels broken since {partition}: {health.words}",
            "label_health": health.to_dict(),
        },
    )


def _fallback_time(changes: Sequence[Change]) -> Any:
    return max(c.at for c in changes) if changes else pd.Timestamp.now(tz="UTC").to_pydatetime()


def partitions_known(changes: Sequence[Change]) -> list[str]:
    return sorted({c.partition for c in changes if c.partition})
