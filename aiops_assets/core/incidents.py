"""Incident correlation: line a model's performance drop up with every change upstream of it.

The record types are shared by the change-log capture (``aiops_assets/changelog.py``, which reads
the Dagster instance and the ledger) and the correlation engine in this module, which is plain
Python so that it can be tested on scripted histories and run outside Dagster.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class DriftPoint:
    """One feature's drift on one partition, from the drift check's metadata."""

    partition: str
    feature: str
    effect: float
    drifted: bool
