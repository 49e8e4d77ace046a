"""Acknowledged drift: a person said "this shift is known", so it stops paging.

An acknowledgement names one check, the partition a person looked at, the episode it belonged
to, the baseline it was judged against and the features that had drifted, with who and why. It
covers that episode, and any later episode of the same check against the same baseline whose
drifted features it already named: a known shift that comes and goes does not page again, a new
feature drifting does. A new baseline makes it moot (the check starts afresh).

Kept in the artifact store the drift check already reads (one JSON list per check behind a
named ref, each version content-addressed), so the check needs no new resource; the CLI that
writes it also records the act in the ledger's audit log, under the access policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiops_assets.core.store import ArtifactStore

_REF_PREFIX = "drift-acks"


@dataclass(frozen=True)
class Acknowledgement:
    check: str  # the check's user string, e.g. ``features:drift`` (asset path, then check name)
    partition: str
    episode_id: str
    baseline_sha256: str
    features: tuple[str, ...]
    reason: str
    actor: str
    at: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Acknowledgement:
        return cls(
            check=str(data["check"]),
            partition=str(data["partition"]),
            episode_id=str(data["episode_id"]),
            baseline_sha256=str(data["baseline_sha256"]),
            features=tuple(str(name) for name in data.get("features", ())),
            reason=str(data.get("reason", "")),
            actor=str(data.get("actor", "")),
            at=str(data.get("at", "")),
        )

    def covers(
        self, *, episode_id: str, baseline_sha256: str, partition: str, drifted: Sequence[str]
    ) -> bool:
        """True for its own episode, and for a later one of the same shift on the same baseline."""
        if not episode_id:
            return False
        if episode_id == self.episode_id:
            return True
        return (
            baseline_sha256 == self.baseline_sha256
            and partition >= self.partition
            and bool(drifted)
            and set(drifted) <= set(self.features)
        )


def ref_name(check: str) -> str:
    """The store ref of one check's acknowledgements (``features:drift``: ``drift-acks/features/drift``)."""
    return f"{_REF_PREFIX}/{check.replace(':', '/')}"


def acknowledgements(store: ArtifactStore, check: str) -> list[Acknowledgement]:
    """Every acknowledgement recorded for ``check``, oldest first; none when never acknowledged."""
    ref = store.get_ref(ref_name(check))
    if ref is None:
        return []
    return [Acknowledgement.from_dict(item) for item in store.get_json(ref)]


def record_acknowledgement(store: ArtifactStore, ack: Acknowledgement) -> list[Acknowledgement]:
    """Append ``ack`` to its check's list (a new content-addressed version) and return the list."""
    current = acknowledgements(store, ack.check)
    updated = [*current, ack]
    store.set_ref(ref_name(ack.check), store.put_json([item.to_dict() for item in updated]))
    return updated


def acknowledged_by(
    acks: Sequence[Acknowledgement],
    *,
    episode_id: str,
    baseline_sha256: str,
    partition: str,
    drifted: Sequence[str],
) -> Acknowledgement | None:
    """The latest acknowledgement covering this episode at this partition, if any."""
    for ack in reversed(acks):
        if ack.covers(
            episode_id=episode_id,
            baseline_sha256=baseline_sha256,
            partition=partition,
            drifted=drifted,
        ):
            return ack
    return None
