"""The records the change log and the incident engine share: changes, evaluations, drift,
the incident window and a ranked suspect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CHANGE_KINDS = (
    "data",  # a snapshot's data version (schema, distribution summary)
    "feature_set",  # a feature-set version
    "code",  # an asset's code version
    "config",  # a run config hash and its diff
    "environment",  # package / Python / platform differences between capsules
    "alias",  # a registry alias change (promotion, rollback)
    "policy",  # a check policy or access policy change
    "threshold",  # a detector threshold or alert budget change
)


@dataclass(frozen=True)
class Change:
    """One change upstream of (or at) the model, as the change log records it."""

    kind: str
    subject: str  # an asset key ("features"), or "anomaly_detector:champion", or a policy name
    at: datetime  # when the change took effect (UTC)
    summary: str  # one line a person reads: "code version features-1 -> features-2"
    partition: str | None = None  # the data partition it affects, when it has one
    run_id: str | None = None
    before: Any = None
    after: Any = None
    features: tuple[str, ...] = ()  # feature columns the change touches, when known
    lineage_distance: int | None = None  # hops upstream from the model (0 = the model itself)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PerformancePoint:
    """The model's performance check on one partition."""

    partition: str
    at: datetime
    passed: bool
    metrics: dict[str, float]
    model_version: int | None = None
    implicated: tuple[str, ...] = ()  # services whose own false-alarm rate failed the check


@dataclass(frozen=True)
class DriftPoint:
    """One feature's drift on one partition, from the drift check's metadata."""

    partition: str
    feature: str
    effect: float
    drifted: bool


@dataclass(frozen=True)
class IncidentWindow:
    """The boundary an incident is explained across: whatever changed between these two
    evaluations (or shortly before the bad one) is a suspect."""

    last_good: PerformancePoint | None
    first_bad: PerformancePoint


def _sorted_performance(performance: Sequence[PerformancePoint]) -> list[PerformancePoint]:
    # A partition re-evaluated later (a backfill) keeps only its latest verdict: the window is
    # about what the model does on that data now, not what an earlier run said.
    latest: dict[str, PerformancePoint] = {}
    for point in performance:
        kept = latest.get(point.partition)
        if kept is None or point.at >= kept.at:
            latest[point.partition] = point
    return [latest[key] for key in sorted(latest)]


def find_incident_window(
    performance: Sequence[PerformancePoint], *, at: datetime | None = None
) -> IncidentWindow | None:
    """Locate the failing streak to explain: the one that starts most recently (at or before
    ``at`` when given, so a past incident can be re-investigated after later ones).

    The streak's first point, not its latest, is the boundary, because later failures are
    consequences; the evaluation just before it is the last one known good.
    """
    points = _sorted_performance(performance)
    if at is not None:
        points = [point for point in points if point.at <= at]
    last_failing = next((i for i in range(len(points) - 1, -1, -1) if not points[i].passed), None)
    if last_failing is None:
        return None
    start = last_failing
    while start > 0 and not points[start - 1].passed:
        start -= 1
    last_good = points[start - 1] if start > 0 else None
    return IncidentWindow(last_good=last_good, first_bad=points[start])


@dataclass(frozen=True)
class Suspect:
    """A change with its score and the evidence behind it, so a person can disagree with the
    ranking for a stated reason rather than trust a number."""

    change: Change
    score: float  # the prior: timing, lineage, drift (scoring.py); breaks ties among equal evidence
    components: dict[str, float]
    explanation: str
    evidence: float = 0.0  # measured: replay effect, label health, characterized data change
    evidence_source: str = "none"  # "replay", "labels", "data" or "none"
    reasons: tuple[str, ...] = ()  # the evidence in words
    decoy: bool = False  # a replay showed that reverting it changes nothing
