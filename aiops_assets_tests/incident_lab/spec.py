"""What one lab incident is: the planted cause, its decoys, and how to recognise each in a report.

Everything here is plain data, written to ``incident.json`` in the incident's home, so a stored
home can be diagnosed again later (``--diagnose-only``) with the same deploy stand-ins active.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any

START = date(2026, 1, 5)
DAYS = 11
TRAINED_DAYS = 5
# Days 0-4 are ingested and trained on, the weekend (5-6) is served: the shared history.
HISTORY_DAYS = 7
FIRST_INCIDENT_DAY = HISTORY_DAYS
PARTITIONS = tuple((START + timedelta(days=offset)).isoformat() for offset in range(DAYS))


def partition(day: int) -> str:
    return PARTITIONS[day]


@dataclass(frozen=True)
class Predicate:
    """Recognises one recorded change among a report's suspects.

    ``partitions`` None matches any partition (ledger changes have none); ``service`` is compared
    with ``details["service"]`` only when the change carries one, because today's change log
    records one data change per asset and partition, without a service; ``details`` must match
    exactly where given.
    """

    kind: str
    subject: str
    partitions: tuple[str, ...] | None = None
    service: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, change: Mapping[str, Any]) -> bool:
        if change.get("kind") != self.kind or change.get("subject") != self.subject:
            return False
        if self.partitions is not None and change.get("partition") not in self.partitions:
            return False
        details = change.get("details") or {}
        if self.service is not None and details.get("service", self.service) != self.service:
            return False
        return all(details.get(key) == value for key, value in self.details.items())

    def service_checked(self, change: Mapping[str, Any]) -> bool:
        """Whether a match also named the service (False: kind and subject only)."""
        return self.service is None or "service" in (change.get("details") or {})

    def words(self) -> str:
        where = "" if self.partitions is None else f" in {', '.join(self.partitions)}"
        service = f" service={self.service}" if self.service else ""
        extra = "".join(f" {key}={value}" for key, value in self.details.items())
        return f"{self.kind}/{self.subject}{where}{service}{extra}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["partitions"] = None if self.partitions is None else list(self.partitions)
        data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Predicate:
        partitions = data.get("partitions")
        return cls(
            kind=str(data["kind"]),
            subject=str(data["subject"]),
            partitions=None if partitions is None else tuple(str(p) for p in partitions),
            service=data.get("service"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Fault:
    """One planted change (the cause or a decoy): what it is, from which day, with what values.

    ``predicates`` recognise it in a report (any one suffices); ``features`` are the drift
    features it touches, as globs, for the feature rankers that cannot name a change.
    """

    kind: str
    day: int
    params: Mapping[str, Any]
    predicates: tuple[Predicate, ...] = ()
    features: tuple[str, ...] = ()

    @property
    def partition(self) -> str:
        return partition(self.day)

    def words(self) -> str:
        values = ", ".join(f"{key}={value}" for key, value in sorted(self.params.items()))
        return f"{self.kind} from {self.partition} ({values})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "day": self.day,
            "params": dict(self.params),
            "predicates": [predicate.to_dict() for predicate in self.predicates],
            "features": list(self.features),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        return cls(
            kind=str(data["kind"]),
            day=int(data["day"]),
            params=dict(data.get("params") or {}),
            predicates=tuple(Predicate.from_dict(p) for p in data.get("predicates") or ()),
            features=tuple(str(f) for f in data.get("features") or ()),
        )


@dataclass(frozen=True)
class IncidentSpec:
    """One drawn incident: the family's cause, 0 to 2 decoys, and the days to serve.

    ``last_day`` is the latest day that may be served: the day the cause should have failed the
    performance check, plus one.
    """

    family: str
    seed: int
    base_seed: int
    attempt: int
    cause: Fault
    decoys: tuple[Fault, ...]
    last_day: int

    @property
    def name(self) -> str:
        return f"{self.family}-{self.seed}"

    @property
    def faults(self) -> tuple[Fault, ...]:
        return (self.cause, *self.decoys)

    def with_cause(self, cause: Fault) -> IncidentSpec:
        return replace(self, cause=cause)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "seed": self.seed,
            "base_seed": self.base_seed,
            "attempt": self.attempt,
            "cause": self.cause.to_dict(),
            "decoys": [decoy.to_dict() for decoy in self.decoys],
            "last_day": self.last_day,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IncidentSpec:
        return cls(
            family=str(data["family"]),
            seed=int(data["seed"]),
            base_seed=int(data["base_seed"]),
            attempt=int(data["attempt"]),
            cause=Fault.from_dict(data["cause"]),
            decoys=tuple(Fault.from_dict(d) for d in data.get("decoys") or ()),
            last_day=int(data["last_day"]),
        )


# --- reading a report ------------------------------------------------------------------------


def suspect_changes(report: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The changes of a report's suspects, best first."""
    if not report:
        return []
    return [suspect.get("change") or {} for suspect in report.get("suspects") or ()]


def first_rank(changes: Sequence[Mapping[str, Any]], predicates: Iterable[Predicate]) -> int | None:
    """The 1-based rank of the first change any predicate matches; None when none does."""
    predicates = tuple(predicates)
    for rank, change in enumerate(changes, start=1):
        if any(predicate.matches(change) for predicate in predicates):
            return rank
    return None


def matches_any(change: Mapping[str, Any], predicates: Iterable[Predicate]) -> bool:
    return any(predicate.matches(change) for predicate in predicates)


def feature_matches(feature: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(feature, glob) for glob in globs)


def feature_rank(ranking: Sequence[str], globs: Sequence[str]) -> int | None:
    """The 1-based rank of the first ranked feature the globs match; None: none (or no globs:
    the change touches no feature, so a feature ranker cannot name it)."""
    for rank, feature in enumerate(ranking, start=1):
        if feature_matches(feature, globs):
            return rank
    return None
