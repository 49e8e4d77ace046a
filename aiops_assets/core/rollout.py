"""Staged rollout of a model version: canary services first, then the rest, stage by stage.

A new champion that passed the promotion gate on a holdout can still hurt some services in
production. A rollout moves it slice by slice: each stage adds services (a list, or a percentage
chosen deterministically by service name, as flags do) and waits for the performance check of the
slice it just added; a passing check opens the next stage, a failing one halts the rollout and
rolls that slice back to the previous version, leaving every other service as it was. When the
last stage passes, ``champion`` moves to the new version in the same transaction, and each stage's
verdict becomes a check of that version. Every stage, verdict and evidence is an audited ledger
row, so which service served which version at any moment can be answered afterwards.

A rollout is no way around the gate: a version the gate refused starts only with an override
and its reason (audited with the refusal), and a stage passes only once its slice held enough
labelled anomalies to mean something; until then it waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops_assets.core.experiments import criterion_met, parse_criterion
from aiops_assets.core.flags import bucket
from aiops_assets.core.ledger import Ledger, Rollout, RolloutStage
from aiops_assets.core.yaml_mapping import read_yaml_mapping

CHAMPION = "champion"
DEFAULT_PLAN_PATH = Path(__file__).with_name("rollout_plan.yaml")
# The scores column naming the version that scored each row, so each version is judged on its own.
MODEL_VERSION_COLUMN = "model_version"
# A slice with a handful of labelled anomalies says nothing about recall: a stage waits for this
# many (summed over the days it was measured) before it may pass, unless its plan says otherwise.
DEFAULT_MIN_LABELLED_ANOMALIES = 5
# The slice metric counting labelled anomalies (the performance check's spelling).
LABELLED_METRIC = "labeled_anomalies"


class RolloutError(ValueError):
    """A plan or a step that cannot be carried out; the message says what to change."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    services: tuple[str, ...] = ()
    percent: float | None = None
    min_labelled_anomalies: int = DEFAULT_MIN_LABELLED_ANOMALIES

    def __post_init__(self) -> None:
        if self.min_labelled_anomalies < 0:
            raise RolloutError(
                f"stage {self.name}: min_labelled_anomalies must be 0 or more, "
                f"not {self.min_labelled_anomalies}"
            )

    def covers(self, key: str, service: str) -> bool:
        if service in self.services:
            return True
        return self.percent is not None and bucket(key, service) < self.percent


@dataclass(frozen=True)
class RolloutPlan:
    """Stages in order and the check each stage's new slice must pass (metric grammar)."""

    stages: tuple[StageSpec, ...]
    check: str

    def __post_init__(self) -> None:
        if len(self.stages) < 2:
            raise RolloutError("a staged rollout needs a canary stage and at least one more")
        if self.stages[-1].percent != 100:
            raise RolloutError(
                f"the last stage ({self.stages[-1].name}) must reach every service: percent: 100"
            )
        if not parse_criterion(self.check):
            raise RolloutError("a rollout needs a check for each slice, such as 'f1>=0.6'")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutPlan:
        """``min_labelled_anomalies`` at the top is every stage's default; a stage may set its own."""
        default = _count(data.get("min_labelled_anomalies"), DEFAULT_MIN_LABELLED_ANOMALIES)
        stages = tuple(
            StageSpec(
                name=str(stage["name"]),
                services=tuple(str(s) for s in stage.get("services") or ()),
                percent=None if stage.get("percent") is None else float(stage["percent"]),
                min_labelled_anomalies=_count(stage.get("min_labelled_anomalies"), default),
            )
            for stage in data.get("stages") or ()
        )
        return cls(stages=stages, check=str(data.get("check", "")))

    @classmethod
    def load(cls, path: str | Path | None = None) -> RolloutPlan:
        """A plan from YAML; ``None`` or an empty path reads the packaged default plan."""
        source = Path(path) if path else DEFAULT_PLAN_PATH
        data = read_yaml_mapping(
            source,
            what=f"the rollout plan {source}",
            error=RolloutError,
            expected="a mapping with 'stages' and 'check'",
        )
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as error:
            raise RolloutError(f"{source}: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [
                {
                    "name": s.name,
                    "services": list(s.services),
                    "percent": s.percent,
                    "min_labelled_anomalies": s.min_labelled_anomalies,
                }
                for s in self.stages
            ],
            "check": self.check,
        }

    def slices(self, key: str, services: Iterable[str]) -> list[tuple[str, list[str]]]:
        """Each stage's name and the services it adds (stages are cumulative)."""
        remaining = sorted(set(services))
        result = []
        for stage in self.stages:
            added = [service for service in remaining if stage.covers(key, service)]
            remaining = [service for service in remaining if service not in added]
            result.append((stage.name, added))
        if not result[0][1]:
            raise RolloutError(f"the canary stage {result[0][0]} selects none of the services")
        return result


def _count(value: Any, default: int) -> int:
    """A whole, non-negative count from YAML; ``None`` keeps the default."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise RolloutError(f"min_labelled_anomalies must be a whole number, not {value!r}")
    return int(value)


def _key(model_name: str) -> str:
    return f"rollout:{model_name}"


def gate_refusal(ledger: Ledger, model_name: str, version: int) -> str | None:
    """The reason the promotion gate gave, when its latest decision on ``version`` refused it."""
    decisions = [
        record for record in ledger.promotions(model_name) if record.candidate_version == version
    ]
    if not decisions or decisions[-1].promoted:
        return None
    return decisions[-1].reason


def start_rollout(
    ledger: Ledger,
    model_name: str,
    version: int,
    plan: RolloutPlan,
    services: Sequence[str],
    *,
    actor: str,
    reason: str,
    override_reason: str | None = None,
) -> Rollout:
    """Begin serving ``version`` to the canary slice; everyone else keeps the champion.

    A version the gate refused does not reach a canary by the back door: starting its rollout
    takes an ``override_reason``, recorded with the refusal it overrides in the start's audit
    entry.
    """
    champion = ledger.get_alias(model_name, CHAMPION)
    if champion is not None and champion.version == version:
        raise RolloutError(f"{model_name} v{version} is already the champion")
    refused = gate_refusal(ledger, model_name, version)
    if refused is not None and not (override_reason or "").strip():
        raise RolloutError(
            f"the promotion gate refused {model_name} v{version} ({refused}); rolling it out "
            "needs override_gate with an override_reason"
        )
    slices = plan.slices(_key(model_name), services)
    stored_plan = {**plan.to_dict(), "services": sorted(set(services))}
    name, canary = slices[0]
    override = (
        None
        if refused is None
        else {"reason": str(override_reason).strip(), "refused_because": refused}
    )
    return ledger.start_rollout(
        model_name,
        version,
        from_version=None if champion is None else champion.version,
        plan=stored_plan,
        stage_name=name,
        services=canary,
        actor=actor,
        reason=reason,
        gate_override=override,
    )


def advance(
    ledger: Ledger,
    rollout_id: int,
    metrics: Mapping[str, float],
    *,
    actor: str,
    evaluated: str | None = None,
) -> Rollout:
    """Judge the active stage's slice; open the next stage, finish (promote), wait, or halt.

    A failing (or unjudgeable: a metric missing) check rolls back only the active slice. A
    passing one opens the next stage only once the stage's measurements (one per ``evaluated``
    label: a re-evaluation of the same day replaces its count) hold the plan's minimum of
    labelled anomalies; until then the stage stays active and says what it waits for.
    """
    rollout = ledger.get_rollout(rollout_id)
    if rollout is None:
        raise RolloutError(f"no rollout {rollout_id}")
    if rollout.status != "running":
        raise RolloutError(f"rollout {rollout_id} is {rollout.status}; nothing to advance")
    plan = RolloutPlan.from_dict(rollout.plan)
    active = rollout.stages[-1]
    verdict = criterion_met(plan.check, metrics)
    evidence = {
        "check": plan.check,
        "metrics": {str(k): float(v) for k, v in metrics.items()},
        "passed": verdict is True,
    }
    if verdict is not True:
        why = "a metric it names is missing" if verdict is None else "it failed"
        return _halt_active(
            ledger,
            rollout,
            {**evidence, "reason": f"check {plan.check!r} on stage {active.name}: {why}"},
            actor=actor,
        )
    labelled = _labelled_evidence(plan, active, metrics, evaluated)
    evidence = {**evidence, **labelled}
    if not labelled["passed"]:
        evidence["reason"] = (
            f"waiting: {labelled['labelled_anomalies']} of "
            f"{labelled['min_labelled_anomalies']} labelled anomalies"
        )
        return ledger.record_stage_evidence(
            rollout_id, stage_index=active.index, evidence=evidence, actor=actor
        )
    slices = plan.slices(_key(rollout.model_name), rollout.plan.get("services", ()))
    if active.index + 1 < len(slices):
        return ledger.update_rollout(
            rollout_id,
            stage_index=active.index,
            stage_status="passed",
            evidence=evidence,
            actor=actor,
            next_stage=slices[active.index + 1],
        )
    # The last pass promotes, and each stage's verdict becomes a check of the new champion.
    return ledger.update_rollout(
        rollout_id,
        stage_index=active.index,
        stage_status="passed",
        evidence=evidence,
        actor=actor,
        rollout_status="completed",
        promote_reason=(
            f"staged rollout {rollout_id} completed: every stage passed {plan.check!r}"
        ),
    )


def _labelled_evidence(
    plan: RolloutPlan, active: RolloutStage, metrics: Mapping[str, float], evaluated: str | None
) -> dict[str, Any]:
    """The labelled anomalies the stage has seen so far, one count per measured evaluation."""
    observed = {str(k): int(v) for k, v in (active.evidence.get("observed") or {}).items()}
    label = evaluated or f"evaluation {len(observed) + 1}"
    observed[label] = int(float(metrics.get(LABELLED_METRIC, 0.0)))
    needed = plan.stages[active.index].min_labelled_anomalies
    total = sum(observed.values())
    return {
        "observed": observed,
        "labelled_anomalies": total,
        "min_labelled_anomalies": needed,
        "passed": total >= needed,
    }


def assignments(rollout: Rollout) -> dict[str, int | None]:
    """Which version serves each service now, by this rollout's stages.

    While it runs, the open and passed stages' services get the new version. A halt sends every
    service back to the previous version (after a failing canary that is the canary alone; after
    a later stage, the earlier stages too: a version that failed one slice serves no slice
    unjudged), and a completed rollout serves the new version everywhere.
    """
    services = [str(service) for service in rollout.plan.get("services", ())]
    if rollout.status == "completed":
        return dict.fromkeys(services, rollout.to_version)
    serving: dict[str, int | None] = dict.fromkeys(services, rollout.from_version)
    if rollout.status != "running":
        return serving
    for stage in rollout.stages:
        if stage.status in ("active", "passed"):
            serving.update(dict.fromkeys(stage.services, rollout.to_version))
    return serving


def halt(ledger: Ledger, rollout_id: int, *, actor: str, reason: str) -> Rollout:
    """Stop a running rollout now, by a person: every service goes back to the previous version.

    The switch for "it hurts" that does not wait for the next check; audited like a verdict.
    """
    rollout = ledger.get_rollout(rollout_id)
    if rollout is None:
        raise RolloutError(f"no rollout {rollout_id}")
    if rollout.status != "running":
        raise RolloutError(f"rollout {rollout_id} is {rollout.status}; only a running one halts")
    if not reason.strip():
        raise RolloutError("a halt needs a reason; it is recorded in the audit log")
    return _halt_active(
        ledger, rollout, {"reason": f"halted by {actor}: {reason}", "manual": True}, actor=actor
    )


def _halt_active(
    ledger: Ledger, rollout: Rollout, evidence: Mapping[str, Any], *, actor: str
) -> Rollout:
    """Roll the active stage back and halt: every service returns to the previous version."""
    return ledger.update_rollout(
        rollout.rollout_id,
        stage_index=rollout.stages[-1].index,
        stage_status="rolled_back",
        evidence={**evidence, "rolled_back_to": rollout.from_version},
        actor=actor,
        rollout_status="halted",
    )


def running_rollout(ledger: Ledger, model_name: str) -> Rollout | None:
    """The model's rollout in progress, if any (the ledger allows at most one)."""
    running = [item for item in ledger.rollouts(model_name) if item.status == "running"]
    return running[-1] if running else None


def serving_versions(
    services: Iterable[str],
    *,
    champion: int | None,
    rollout: Rollout | None = None,
    pinned: Mapping[str, int] | None = None,
) -> dict[str, int | None]:
    """Which model version scores each service: a flag's pin, else the rollout's slice, else
    the champion.

    A pin is an operator's explicit choice for one service and outranks a rollout in flight;
    a rollout only ever moves services that follow the champion, and a service outside its
    open or passed stages follows whatever is champion now.
    """
    moved: set[str] = set()
    if rollout is not None:
        moved = {s for s, v in assignments(rollout).items() if v == rollout.to_version}
    chosen: dict[str, int | None] = {}
    for service in sorted(set(services)):
        if pinned and service in pinned:
            chosen[service] = pinned[service]
        elif rollout is not None and service in moved:
            chosen[service] = rollout.to_version
        else:
            chosen[service] = champion
    return chosen


__all__ = [
    "DEFAULT_MIN_LABELLED_ANOMALIES",
    "DEFAULT_PLAN_PATH",
    "LABELLED_METRIC",
    "MODEL_VERSION_COLUMN",
    "RolloutError",
    "RolloutPlan",
    "StageSpec",
    "advance",
    "assignments",
    "gate_refusal",
    "halt",
    "running_rollout",
    "serving_versions",
    "start_rollout",
]
