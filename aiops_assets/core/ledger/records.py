"""What the ledger hands out: frozen records of registry facts, and the errors it raises.

Records are frozen so that a caller can keep one as evidence without the ledger's later writes
(or the caller's own code) changing what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ALIAS_KINDS = ("assign", "promote", "rollback")
PROBLEM_KINDS = ("edited", "deleted", "inserted", "reordered", "truncated")


class LedgerError(Exception):
    """A registry request that cannot be honoured (unknown version or alias, missing key)."""


class StaleChampionError(LedgerError):
    """A promotion was decided against a champion that another writer has since replaced."""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    sha256: str
    metrics: dict[str, float]
    training_set_version: str
    feature_set_version: str
    capsule_ref: str | None
    run_id: str | None
    created_at: datetime
    created_by: str
    tags: dict[str, str]


@dataclass(frozen=True)
class AliasChange:
    model_name: str
    alias: str
    from_version: int | None
    to_version: int
    actor: str
    at: datetime
    reason: str
    run_id: str | None
    kind: str


@dataclass(frozen=True)
class VersionCheck:
    model_name: str
    version: int
    check_name: str
    partition: str | None
    passed: bool
    severity: str
    metrics: dict[str, Any]
    run_id: str | None
    at: datetime


@dataclass(frozen=True)
class PromotionRecord:
    model_name: str
    candidate_version: int
    champion_version: int | None
    promoted: bool
    reason: str
    evidence: dict[str, Any]
    actor: str
    run_id: str | None
    at: datetime


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    run_id: str | None
    prev_hash: str
    entry_hash: str
    mac: str
    # The digests of the registry rows the entry's transaction wrote (``binding.py``); kept
    # apart from ``details`` so readers see what was done, not the bookkeeping.
    registry: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    kind: str
    message: str
    table: str | None = None  # for a registry row the chain does not explain
    key: str | None = None


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    problems: list[AuditProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure

    def summary(self) -> str:
        """One line for a terminal or an alert: either intact, or every problem with its seq."""
        if self.ok:
            return f"audit log verified: {self.entries} entries, chain intact"
        shown = "; ".join(
            f"{problem.kind} at seq {problem.seq}: {problem.message}"
            for problem in self.problems[:20]
        )
        more = f"; and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        return (
            f"audit log FAILED verification: {self.entries} entries, "
            f"{len(self.problems)} problem(s): {shown}{more}"
        )


@dataclass(frozen=True)
class FeatureSetRecord:
    version_id: str
    name: str
    spec: dict[str, Any]
    status: str
    registered_at: datetime
    registered_by: str
    updated_at: datetime


@dataclass(frozen=True)
class FeatureSetStatusChange:
    version_id: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    reason: str
    evidence: dict[str, Any]
    run_id: str | None


@dataclass(frozen=True)
class FlagVersion:
    version: int
    sha256: str
    body: str
    actor: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class RolloutStage:
    index: int
    name: str
    services: tuple[str, ...]
    status: str
    evidence: dict[str, Any]
    actor: str
    at: datetime


@dataclass(frozen=True)
class Rollout:
    rollout_id: int
    model_name: str
    to_version: int
    from_version: int | None
    plan: dict[str, Any]
    status: str
    actor: str
    started_at: datetime
    updated_at: datetime
    stages: tuple[RolloutStage, ...]
