"""What orders suspects: measured evidence, not timing.

Three kinds of evidence say a change *did* something, and the ranking trusts them in this order:

- a **replay**: the failing partition re-run with the change reverted (or the last good partition
  re-run with it applied) and measured with the performance check's own judge. Its effect is the
  share of the metric's drop the change accounts for; a revert that changes nothing marks a decoy.
- **label health**: labels that are missing, constant, or lose their positives while the model
  keeps alerting at its usual rate. Every performance metric is computed from the labels, so
  strong label evidence outranks the rest: the other measurements stand on the labels.
- a **characterized data change**: which column of which service moved, by how much, against the
  last good partitions. Weaker than a replay (it says the data moved, not that it mattered).

Timing and lineage (``scoring.py``) break ties only among suspects with equal evidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiops_assets.core.incidents.records import Change

# A revert that recovers less than this share of the drop changed nothing that matters.
DECOY_EFFECT = 0.1
# Evidence within this distance counts as equal, so timing and lineage can break the tie.
EVIDENCE_RESOLUTION = 0.05
# Label evidence at or above this makes the metric itself suspect (see the module docstring).
STRONG_LABEL_EVIDENCE = 0.9
# Metrics that need labeled positives to be good (the false-alarm rate does not).
POSITIVE_METRICS = frozenset({"f1", "recall", "precision"})
# The share of an apply replay's effect left to a deploy whose code fingerprint did not change:
# what the replay reproduced came with something else deployed at the same time.
SAME_CODE_SHARE = 0.5
# A data change characterized but not replayed counts at most this much.
UNREPLAYED_DATA_WEIGHT = 0.5
# Findings whose kind is a fault of the feed, not a change in the world the model watches.
FAULT_FINDINGS = frozenset(
    {"unit", "level", "nulls", "zeros", "constant", "missing_service", "duplicates", "timestamps"}
)


def change_key(change: Change) -> str:
    """A stable name for one change, so replays and evidence can refer to it across processes."""
    service = change.details.get("service") if isinstance(change.details, Mapping) else None
    return "|".join(
        [
            change.kind,
            change.subject,
            change.partition or "",
            str(service or ""),
            change.at.isoformat(),
        ]
    )


@dataclass(frozen=True)
class Replay:
    """One counterfactual run of the pipeline and its measured outcome.

    ``direction`` is ``revert`` (the failing partition without the change) or ``apply`` (the last
    good partition with it: the only way to measure a deploy, whose old code is gone).
    ``effect`` is the share of the metric's drop the change accounts for, clipped to [0, 1].
    """

    change: str  # change_key of the suspect
    action: str  # what was done, in words
    direction: str
    partition: str
    metric: str
    observed: float | None  # the metric without the replay
    replayed: float | None  # the metric with it
    target: float | None  # the value that would mean "fully explained"
    passed: bool | None  # the performance check's verdict on the replayed partition
    changed_output: bool  # whether the replay changed the model's input at all
    effect: float
    key: str  # content address of the replay (inputs, revert, code)
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None
    also: tuple[str, ...] = ()  # change_key of other suspects this same replay measured
    replaces_rows: bool = False  # whether the replay swapped some of the day's rows for others

    def for_each_change(self) -> list[tuple[str, Replay]]:
        """This replay under the key of every suspect it measured."""
        return [(key, self) for key in (self.change, *self.also)]

    @property
    def decoy(self) -> bool:
        return self.error is None and (not self.changed_output or self.effect < DECOY_EFFECT)

    def words(self) -> str:
        if self.error is not None:
            return f"{self.action}: not measured ({self.error})"
        if not self.changed_output:
            return f"{self.action}: the model's input is unchanged, so it cannot explain the drop"
        verdict = (
            ""
            if self.passed is None
            else (" (check passes)" if self.passed else " (check still fails)")
        )
        return (
            f"{self.action}: {self.metric} {_fmt(self.observed)} -> {_fmt(self.replayed)}"
            f"{verdict}, {self.effect:.0%} of the drop"
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "decoy": self.decoy,
            "words": self.words(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Replay:
        fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**fields | {"also": tuple(fields.get("also") or ())})


def recovery(observed: float | None, replayed: float | None, target: float | None) -> float:
    """The share of the way from ``observed`` back to ``target`` that ``replayed`` went, in [0, 1]."""
    if observed is None or replayed is None or target is None:
        return 0.0
    gap = target - observed
    if not math.isfinite(gap) or abs(gap) < 1e-12:
        return 0.0
    return min(1.0, max(0.0, (replayed - observed) / gap))


@dataclass(frozen=True)
class Evidence:
    """How strongly one suspect is shown to have caused the drop, with the reasons in words."""

    value: float
    reasons: tuple[str, ...]
    source: str  # "replay", "labels", "data", "none"
    decoy: bool = False

    @property
    def has_evidence(self) -> bool:
        return self.value > 0.0


@dataclass(frozen=True)
class EvidenceInputs:
    """What the plugin measured for one incident: replays by change key, the services the failed
    check implicates, and the label health (as a ``labels`` change in the candidate list)."""

    replays: Mapping[str, Replay] = field(default_factory=dict)
    implicated_services: tuple[str, ...] = ()


def findings_of(change: Change) -> list[Mapping[str, Any]]:
    details = change.details if isinstance(change.details, Mapping) else {}
    found = details.get("findings") or []
    return [item for item in found if isinstance(item, Mapping)]


def _strength(findings: Sequence[Mapping[str, Any]]) -> float:
    """Findings' effect is "times the noise threshold"; 1 is just significant, 10 is glaring."""
    best = max((float(item.get("effect") or 0.0) for item in findings), default=0.0)
    return best / (best + 3.0) if best > 0 else 0.0


def measure_evidence(change: Change, inputs: EvidenceInputs) -> Evidence:
    """The evidence for one suspect: its replay when it had one, else what was characterized."""
    replay = inputs.replays.get(change_key(change))
    if replay is not None and replay.error is None:
        if replay.decoy:
            return Evidence(0.0, (replay.words(),), "replay", decoy=True)
        if _same_code(change):
            return Evidence(
                replay.effect * SAME_CODE_SHARE,
                (
                    replay.words(),
                    "its code version changed but the code it runs did not (same fingerprint):"
                    " the replay applies everything deployed with it, which did the rest",
                ),
                "replay",
            )
        return Evidence(replay.effect, (replay.words(),), "replay")
    reasons = [replay.words()] if replay is not None else []
    if change.kind == "labels":
        value = float(change.details.get("evidence") or 0.0)
        return Evidence(
            value, (*reasons, str(change.details.get("words") or change.summary)), "labels"
        )
    findings = findings_of(change)
    if findings:
        strength = UNREPLAYED_DATA_WEIGHT * _strength(findings)
        service = change.details.get("service")
        where = (
            "on a service the failed check implicates"
            if service in inputs.implicated_services
            else ""
        )
        if where:
            strength = min(UNREPLAYED_DATA_WEIGHT, strength * 1.5)
        words = "; ".join(str(item.get("words")) for item in findings[:3])
        why = f"the data changed ({words}){', ' + where if where else ''}; not replayed"
        return Evidence(strength, (*reasons, why), "data")
    return Evidence(0.0, (*reasons, "no measured evidence"), "none")


def _same_code(change: Change) -> bool:
    """A deploy that relabelled the code without changing it (``code_unchanged`` is recorded
    from the code fingerprints of the two materializations)."""
    details = change.details if isinstance(change.details, Mapping) else {}
    return change.kind == "code" and details.get("code_unchanged") is True


def _explained_by(change: Change, others: Mapping[str, tuple[Change, Evidence]]) -> Change | None:
    """A data change made by the same run as a config change proven to explain the drop (by its
    replay, or by a unit factor that matches what moved) is that config's effect, not a second
    cause."""
    if change.kind != "data" or change.run_id is None:
        return None
    for other, evidence in others.values():
        if (
            other.kind in ("config", "code", "environment", "feature_set")
            and other.run_id == change.run_id
            and evidence.source in ("replay", "config")
            and evidence.value >= 0.5 * UNREPLAYED_DATA_WEIGHT
        ):
            return other
    return None


def _unit_factors(change: Change) -> dict[tuple[str, str], float]:
    """``unit_scale.<service>.<column>`` entries of a config diff -> the factor it changed by."""
    details = change.details if isinstance(change.details, Mapping) else {}
    diff = details.get("config_diff") or {}
    factors = {}
    for path, pair in diff.items() if isinstance(diff, Mapping) else []:
        parts = str(path).split(".")
        if len(parts) != 3 or parts[0] != "unit_scale" or not isinstance(pair, list | tuple):
            continue
        before, after = (_positive(value) for value in [*pair, None, None][:2])
        factors[(parts[1], parts[2])] = after / before
    return factors


def _positive(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 1.0  # an absent factor is 1
    return number if math.isfinite(number) and number > 0 else 1.0


def _config_evidence(change: Change, data: Sequence[Change]) -> Evidence | None:
    """A unit factor whose change matches the level ratio a data change of the same run found
    on that service and column: the config did that move (a no-op factor of 1.0 explains none)."""
    factors = _unit_factors(change)
    if not factors or change.run_id is None:
        return None
    matched: list[tuple[float, str]] = []
    for other in data:
        if other.run_id != change.run_id:
            continue
        for finding in findings_of(other):
            key = (str(finding.get("service")), str(finding.get("column")))
            ratio = _positive(finding.get("ratio"))
            factor = factors.get(key)
            if factor is None or abs(math.log(factor)) < math.log(1.2):
                continue
            if abs(math.log(ratio) - math.log(factor)) <= math.log(1.25):
                matched.append((float(finding.get("effect") or 0.0), str(finding.get("words"))))
    if not matched:
        return None
    strength = UNREPLAYED_DATA_WEIGHT * _strength([{"effect": e} for e, _ in matched])
    words = "; ".join(w for _, w in sorted(matched, reverse=True)[:3])
    return Evidence(
        strength,
        (f"its unit factors match what moved in the same run ({words}); not replayed",),
        "config",
    )


def evidence_for(changes: Sequence[Change], inputs: EvidenceInputs) -> dict[str, Evidence]:
    """Evidence per change key, after attributing a run's data to the run's proven change."""
    measured = {change_key(c): (c, measure_evidence(c, inputs)) for c in changes}
    data = [c for c in changes if c.kind == "data" and findings_of(c)]
    for key, (change, evidence) in list(measured.items()):
        if change.kind == "config" and evidence.source == "none":
            found = _config_evidence(change, data)
            if found is not None:
                measured[key] = (change, found)
    out: dict[str, Evidence] = {}
    for key, (change, evidence) in measured.items():
        cause = _explained_by(change, measured)
        if cause is not None and evidence.value > 0:
            evidence = Evidence(
                evidence.value / 2,
                (*evidence.reasons, f"halved: it is the effect of {cause.summary}"),
                evidence.source,
                evidence.decoy,
            )
        out[key] = evidence
    refuting = _refuting_replay(inputs.replays.values(), measured)
    if refuting is not None:
        out = {key: _refuted_labels(e, refuting) for key, e in out.items()}
    doubt = max((e.value for e in out.values() if e.source == "labels"), default=0.0)
    if doubt <= 0:
        return out
    on_labels = {key for key, replay in inputs.replays.items() if not _refutes_labels(replay)}
    out = {key: _on_doubtful_labels(e, doubt) if key in on_labels else e for key, e in out.items()}
    if doubt >= STRONG_LABEL_EVIDENCE:
        out = {
            key: _under_suspect_labels(e) if key in on_labels or e.source == "labels" else e
            for key, e in out.items()
        }
    return out


def _refutes_labels(replay: Replay) -> bool:
    """Whether a replay's outcome stands whatever today's labels are, and so weighs on them.

    An apply is measured on the last good day, whose labels passed: a deploy that reproduces
    the drop there did it with trusted labels. A revert graded by F1 needs today's positives:
    labels that lost theirs cannot let F1 recover whatever the input, so a recovery shows they
    still grade the model. A revert that keeps today's rows (another model version, the previous
    config or flags) and brings the false-alarm rate back says the rows hold no incidents the
    reverted pipeline would page on. Only a revert that swaps rows (a service's data replaced by
    a quiet day's) can lower the false-alarm rate by removing real, now unlabeled, incidents.
    """
    return (
        replay.error is None
        and not replay.decoy
        and (
            replay.direction == "apply"
            or replay.metric in POSITIVE_METRICS
            or not replay.replaces_rows
        )
    )


def _on_doubtful_labels(evidence: Evidence, doubt: float) -> Evidence:
    """A replay graded by today's false-alarm rate counts only as far as the labels are
    trusted: with positives gone from the labels, alerts on real incidents count as false
    alarms, so any revert that silences them (replacing a busy service's rows by a quiet
    day's) "recovers" the rate. ``doubt`` is the label suspect's own evidence."""
    if evidence.source != "replay":
        return evidence
    return Evidence(
        evidence.value * (1.0 - doubt),
        (
            *evidence.reasons,
            f"discounted by the label evidence ({doubt:.2f}): graded by the false-alarm rate "
            "of labels that may have lost their positives",
        ),
        evidence.source,
        evidence.decoy,
    )


def _refuting_replay(
    replays: Iterable[Replay], measured: Mapping[str, tuple[Change, Evidence]]
) -> tuple[Replay, Change] | None:
    """The strongest replay whose outcome does not rest on today's labels (``_refutes_labels``)."""
    standing = [
        (replay, measured[replay.change][0])
        for replay in replays
        if _refutes_labels(replay) and replay.change in measured
    ]
    return max(standing, key=lambda pair: pair[0].effect, default=None)


def _refuted_labels(evidence: Evidence, refuting: tuple[Replay, Change]) -> Evidence:
    if evidence.source != "labels":
        return evidence
    replay, change = refuting
    how = (
        f"{change.summary} applied to the last good day, whose labels passed, reproduces "
        f"{replay.effect:.0%} of the drop"
        if replay.direction == "apply"
        else f"with these same labels {replay.metric} recovers {replay.effect:.0%} of the drop "
        f"once {change.summary} is reverted"
    )
    return Evidence(
        min(evidence.value, 1.0 - replay.effect),
        (*evidence.reasons, f"weakened: {how}, so the labels still grade the model"),
        evidence.source,
        evidence.decoy,
    )


def _under_suspect_labels(evidence: Evidence) -> Evidence:
    # With labels that lost their positives, a replay that removes alerted rows "recovers" the
    # metric whatever those rows were; the labels' own evidence is the one to trust.
    if evidence.source == "labels":
        return Evidence(1.0, evidence.reasons, "labels")
    return Evidence(
        min(evidence.value, STRONG_LABEL_EVIDENCE - EVIDENCE_RESOLUTION),
        (*evidence.reasons, "measured against labels that are themselves suspect"),
        evidence.source,
        evidence.decoy,
    )


def evidence_rank(evidence: Evidence) -> float:
    """The evidence rounded to its resolution: equal buckets leave the order to the prior."""
    return round(evidence.value / EVIDENCE_RESOLUTION) * EVIDENCE_RESOLUTION


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
