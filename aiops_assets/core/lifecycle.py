"""Feature-set lifecycle: experimental -> candidate -> production -> retired, with evidence.

A feature set that looked good in a notebook has only shown that it looked good once. Promotion to
production therefore asks for four pieces of evidence, each computed by code that already guards
the reference pipeline: the feature quality suite passes, the point-in-time probe finds no
leakage, the features do not drift within the reference window, and an ablation run recorded in
the experiment ledger (a model trained on the candidate against one trained on the production
set, with its success criterion declared before it ran) met that criterion. The decision, with
every criterion's evidence, goes into the ledger; a refusal is audited too and names what failed.

The ledger stores statuses; this module decides which transitions are allowed and what a promotion
needs, so the rules live in one reviewable place.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from aiops_assets.core.drift import (
    DriftPolicy,
    DriftResult,
    build_profile,
    calibrate,
    evaluate_drift,
)
from aiops_assets.core.environments import Environment, current_environment
from aiops_assets.core.experiments import ExperimentRun, criterion_met, parse_criterion
from aiops_assets.core.features import (
    FeatureSetSpec,
    LeakageProbe,
    compute_features,
    model_input_columns,
    probe_point_in_time,
)
from aiops_assets.core.ledger import FeatureSetRecord, FeatureSetStatusChange, Ledger
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    TRAIN,
    DetectorConfig,
    TrainingSetConfig,
    build_training_set,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.quality import QualitySuite, SuiteReport, load_suite, validate_frame
from aiops_assets.core.telemetry import LABEL, TIMESTAMP

STATUSES = ("experimental", "candidate", "production", "retired")
# Production is reached only through `promote_feature_set`, never through `transition`.
TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "experimental": ("candidate", "retired"),
    "candidate": ("production", "experimental", "retired"),
    "production": ("retired",),
    "retired": (),
}
CRITERIA = ("quality", "leakage", "drift_stability", "ablation")
# The experiment-run tag that names the feature set an ablation compared against.
ABLATION_BASELINE_TAG = "ablation_baseline"
ABLATION_KIND_TAG = "experiment_kind"
DEFAULT_FEATURE_SUITE = Path(__file__).with_name("suites") / "features.yaml"
# Metrics an ablation reports for both arms, so a criterion can name their difference.
MIN_STABILITY_DAYS = 3
MIN_BASELINE_DAYS = 2
ABLATION_METRICS = ("f1", "pr_auc", "precision", "recall", "false_alarm_rate", "alert_rate")


class LifecycleError(ValueError):
    """A status change the lifecycle does not allow; the message says what would be allowed."""


@dataclass(frozen=True)
class CriterionResult:
    """One promotion criterion: whether it held, one line why, and the numbers behind it."""

    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class FeatureSetAssessment:
    """The data-side evidence for a feature set over one window of days."""

    version_id: str
    days: tuple[str, ...]
    quality: CriterionResult
    leakage: CriterionResult
    drift_stability: CriterionResult

    @property
    def criteria(self) -> tuple[CriterionResult, ...]:
        return (self.quality, self.leakage, self.drift_stability)


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of a promotion request with every criterion it was judged on."""

    version_id: str
    baseline_version: str | None
    promoted: bool
    criteria: tuple[CriterionResult, ...]

    @property
    def failed(self) -> list[CriterionResult]:
        return [criterion for criterion in self.criteria if not criterion.passed]

    @property
    def reason(self) -> str:
        if self.promoted:
            return f"promoted: all {len(self.criteria)} criteria passed"
        return "refused: " + "; ".join(
            f"{criterion.name} failed ({criterion.detail})" for criterion in self.failed
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "baseline_version": self.baseline_version,
            "criteria": [criterion.to_dict() for criterion in self.criteria],
        }


# --- the criteria -----------------------------------------------------------------------------


def quality_criterion(report: SuiteReport) -> CriterionResult:
    """Every expectation of the feature suite holds on the window, WARN ones included: a feature
    set that enters production should not start life with known warnings."""
    failures = report.failures()
    evidence = {"suite": report.suite_name, "suite_sha256": report.suite_sha256}
    if not failures:
        return CriterionResult(
            "quality", True, f"suite {report.suite_name}: all expectations hold", evidence
        )
    return CriterionResult(
        "quality",
        False,
        f"suite {report.suite_name}: {len(failures)} expectation(s) fail, first: "
        f"{failures[0].headline()}",
        {**evidence, "failures": [failure.headline() for failure in failures]},
    )


def leakage_criterion(probe: LeakageProbe) -> CriterionResult:
    evidence = {
        "cutoffs": [str(cutoff) for cutoff in probe.cutoffs],
        "compared_cells": probe.compared_cells,
    }
    if probe.passed:
        return CriterionResult(
            "leakage",
            True,
            f"no feature moved when the future was removed ({probe.compared_cells} cells)",
            evidence,
        )
    first = probe.mismatches[0]
    return CriterionResult(
        "leakage",
        False,
        f"{len(probe.mismatches)} cell(s) changed when the future was removed, first "
        f"{first['column']} at {first['timestamp']}",
        {**evidence, "mismatches": list(probe.mismatches[:10])},
    )


def drift_stability_criterion(
    results: Mapping[str, DriftResult], baseline: Mapping[str, DriftResult] | None = None
) -> CriterionResult:
    """Stable when no day of the reference window drifts at ERROR against the window's other
    days, except where the production feature set drifts on the same column that day.

    A feature that drifts between ordinary days would page on noise in production and teach a
    model a moving target. The comparison with production keeps the bar where it is today: a
    column both sets compute the same way and production already drifts on is the data's doing,
    not the candidate's.
    """
    if not results:
        return CriterionResult(
            "drift_stability", False, "no day of the window had data to check stability on"
        )
    unstable: dict[str, list[str]] = {}
    excused: dict[str, list[str]] = {}
    for day, result in sorted(results.items()):
        reference = (baseline or {}).get(day)
        accepted = (
            {item.feature for item in reference.features if item.verdict == "error"}
            if reference is not None
            else set()
        )
        errors = [item.feature for item in result.features if item.verdict == "error"]
        new_errors = [name for name in errors if name not in accepted]
        if new_errors:
            unstable[day] = new_errors
        if len(new_errors) < len(errors):
            excused[day] = [name for name in errors if name in accepted]
    evidence = {
        "verdicts": {day: result.verdict for day, result in sorted(results.items())},
        "policy_sha256": next(iter(results.values())).policy_sha256,
        "compared_with_production": baseline is not None,
        "also_drifting_in_production": excused,
    }
    if not unstable:
        return CriterionResult(
            "drift_stability",
            True,
            f"no ERROR drift of its own on {len(results)} day(s)",
            evidence,
        )
    first_day = min(unstable)
    return CriterionResult(
        "drift_stability",
        False,
        f"ERROR drift on {len(unstable)} of {len(results)} day(s), first {first_day}: "
        f"{', '.join(unstable[first_day][:5])}",
        {**evidence, "unstable": unstable},
    )


def ablation_criterion(
    run: ExperimentRun | None, *, candidate: str, baseline: str | None
) -> CriterionResult:
    """The ablation run must compare this candidate with the production set, with a criterion
    declared before it ran that its recorded metrics meet (re-evaluated here, not trusted)."""
    if baseline is None:
        return CriterionResult(
            "ablation", False, "there is no production feature set of this name to compare with"
        )
    if run is None:
        return CriterionResult(
            "ablation",
            False,
            f"no ablation run of {candidate} against {baseline} in the experiment ledger",
        )
    evidence = {
        "run_id": run.run_id,
        "hypothesis": run.hypothesis,
        "success_criterion": run.success_criterion,
        "metrics": dict(run.metrics),
    }
    if run.feature_set_version != candidate:
        return CriterionResult(
            "ablation",
            False,
            f"run {run.run_id} trained on {run.feature_set_version or 'no feature set'}, "
            f"not on {candidate}",
            evidence,
        )
    compared = run.tags.get(ABLATION_BASELINE_TAG)
    if compared != baseline:
        return CriterionResult(
            "ablation",
            False,
            f"run {run.run_id} compared against {compared or 'nothing'}, not against the "
            f"production feature set {baseline}",
            evidence,
        )
    if not run.success_criterion.strip():
        return CriterionResult(
            "ablation",
            False,
            f"run {run.run_id} declared no success criterion before it ran",
            evidence,
        )
    met = criterion_met(run.success_criterion, run.metrics)
    if met is not True:
        state = "cannot be judged (a metric is missing)" if met is None else "was not met"
        return CriterionResult(
            "ablation",
            False,
            f"run {run.run_id}: criterion {run.success_criterion!r} {state}",
            evidence,
        )
    return CriterionResult(
        "ablation",
        True,
        f"run {run.run_id}: criterion {run.success_criterion!r} met",
        evidence,
    )


# --- computing the evidence -------------------------------------------------------------------


def _day(timestamp: pd.Series) -> pd.Series:
    return timestamp.dt.floor("D").dt.strftime("%Y-%m-%d")


def compute_window(
    telemetry: pd.DataFrame, spec: FeatureSetSpec, days: Sequence[str]
) -> pd.DataFrame:
    """Features for ``days`` (ISO dates), each row seeing only its past, as the asset computes."""
    start = pd.Timestamp(min(days))
    end = pd.Timestamp(max(days)) + pd.Timedelta(days=1)
    return compute_features(telemetry, spec, output_start=start, output_end=end)


def assess_feature_set(
    telemetry: pd.DataFrame,
    spec: FeatureSetSpec,
    days: Sequence[str],
    *,
    suite: QualitySuite | None = None,
    drift_policy: DriftPolicy | None = None,
    baseline: FeatureSetSpec | None = None,
    seed: int = 0,
) -> FeatureSetAssessment:
    """Quality, leakage and drift stability of ``spec`` computed on ``telemetry`` over ``days``.

    ``days`` is the reference window: days believed normal. Each day's ordinary (unlabeled)
    rows are tested with the pipeline's drift policy against a profile of the other days,
    calibrated on them as the drift baseline asset is; ``baseline`` (the production spec) is
    measured the same way, so drift that production shows on the same column is not held
    against the candidate.
    ``telemetry`` should hold the day before the first one too (the features' history).
    """
    ordered = sorted(days)
    if len(ordered) < MIN_STABILITY_DAYS:
        raise LifecycleError(
            f"a stability window needs at least {MIN_STABILITY_DAYS} days; got {len(ordered)}"
        )
    features = compute_window(telemetry, spec, ordered)
    report = validate_frame(features, suite or load_suite(DEFAULT_FEATURE_SUITE))
    start = pd.Timestamp(ordered[0])

    def recompute(history: pd.DataFrame) -> pd.DataFrame:
        return compute_features(history, spec, output_start=start)

    probe = probe_point_in_time(telemetry, features, recompute, seed=seed)
    stability = _stability(features, ordered, drift_policy)
    production = (
        _stability(compute_window(telemetry, baseline, ordered), ordered, drift_policy)
        if baseline is not None
        else None
    )
    return FeatureSetAssessment(
        version_id=spec.version_id,
        days=tuple(ordered),
        quality=quality_criterion(report),
        leakage=leakage_criterion(probe),
        drift_stability=drift_stability_criterion(stability, production),
    )


def _stability(
    features: pd.DataFrame, days: Sequence[str], policy: DriftPolicy | None
) -> dict[str, DriftResult]:
    day_of_row = _day(features[TIMESTAMP])
    columns = model_input_columns(features)
    # Labeled anomalies are meant to stand out; stability is about the ordinary rows.
    ordinary = features[LABEL] != 1 if LABEL in features else pd.Series(True, features.index)
    by_day = {day: features.loc[(day_of_row == day) & ordinary, columns] for day in days}
    results: dict[str, DriftResult] = {}
    for day in days:
        others = [by_day[other] for other in days if other != day and not by_day[other].empty]
        if by_day[day].empty or len(others) < MIN_BASELINE_DAYS:
            continue
        reference = pd.concat(others, ignore_index=True)
        profile = calibrate(build_profile(reference, numeric=columns), others)
        results[day] = evaluate_drift(profile, by_day[day], policy)
    return results


def _arm_metrics(
    telemetry: pd.DataFrame,
    spec: FeatureSetSpec,
    days: Sequence[str],
    training: TrainingSetConfig,
    detector: DetectorConfig,
) -> dict[str, float]:
    training_set = build_training_set(compute_window(telemetry, spec, days), training)
    model = train_detector(training_set[training_set[SPLIT] == TRAIN], detector)
    return evaluate_detector(model, training_set[training_set[SPLIT] == HOLDOUT])


def run_ablation(
    telemetry: pd.DataFrame,
    candidate: FeatureSetSpec,
    baseline: FeatureSetSpec,
    days: Sequence[str],
    *,
    hypothesis: str,
    success_criterion: str,
    model_name: str = "anomaly_detector",
    training: TrainingSetConfig | None = None,
    detector: DetectorConfig | None = None,
    run_id: str | None = None,
    dataset_version: str = "",
    at: datetime | None = None,
) -> ExperimentRun:
    """Train the same detector on both feature sets over the same days and compare holdouts.

    The criterion is parsed before anything trains, so a typo cannot be fixed after the metrics
    are known. Metrics are the candidate's own, ``baseline.<m>`` and ``delta.<m>`` (candidate
    minus baseline), so ``delta.pr_auc>=0.01`` declares "beats production by a point".
    """
    if not parse_criterion(success_criterion):
        raise LifecycleError(
            "an ablation needs a success criterion declared before it runs, such as "
            "'delta.pr_auc>=0.0'"
        )
    training = training or TrainingSetConfig()
    detector = detector or DetectorConfig()
    ordered = sorted(days)
    ours = _arm_metrics(telemetry, candidate, ordered, training, detector)
    theirs = _arm_metrics(telemetry, baseline, ordered, training, detector)
    metrics: dict[str, float] = dict(ours)
    for name in ABLATION_METRICS:
        metrics[f"baseline.{name}"] = theirs[name]
        metrics[f"delta.{name}"] = ours[name] - theirs[name]
    return ExperimentRun(
        run_id=run_id or f"ablation-{uuid.uuid4().hex[:12]}",
        model_name=model_name,
        model_version=None,
        capsule_id=None,
        at=at or datetime.now(UTC),
        config={
            "candidate": candidate.to_dict(),
            "baseline": baseline.to_dict(),
            "days": ordered,
            "training": {"holdout_days": training.holdout_days, "seed": training.seed},
            "detector": {"n_estimators": detector.n_estimators, "seed": detector.seed},
        },
        metrics=metrics,
        tags={ABLATION_BASELINE_TAG: baseline.version_id, ABLATION_KIND_TAG: "ablation"},
        dataset_version=dataset_version,
        feature_set_version=candidate.version_id,
        hypothesis=hypothesis,
        success_criterion=success_criterion,
        criterion_met=criterion_met(success_criterion, metrics),
    )


# --- the ledger side --------------------------------------------------------------------------


def register_feature_set(
    ledger: Ledger, spec: FeatureSetSpec, *, actor: str, status: str = "experimental"
) -> FeatureSetRecord:
    """Register a spec (idempotent). Only the first set of a name may start in production:
    that bootstraps a lifecycle around a pipeline that already serves it."""
    if status not in ("experimental", "production"):
        raise LifecycleError(
            f"a feature set is registered as experimental (or, the first of its name, as "
            f"production), not {status!r}"
        )
    if (
        status == "production"
        and ledger.get_feature_set(spec.version_id) is None
        and ledger.list_feature_sets(name=spec.name, status="production")
    ):
        raise LifecycleError(
            f"{spec.name} already has a production feature set; register {spec.version_id} "
            "as experimental and promote it"
        )
    reason = (
        "bootstrap: the feature set already in service"
        if status == "production"
        else ("registered")
    )
    return ledger.register_feature_set(
        spec.version_id,
        name=spec.name,
        spec=spec.to_dict(),
        actor=actor,
        status=status,
        reason=reason,
    )


def feature_set_mix(ledger: Ledger, versions_by_day: Mapping[str, str]) -> str | None:
    """What a training set over days of several feature-set versions mixes, or a refusal.

    Days computed by different feature sets mean different things, and a model trained on the
    mix matches neither. The one mix allowed is the lifecycle's own switch: the newest day's set
    is in production and every other set in the mix is retired (a promotion with evidence
    retired it, audited); that mix is returned in words for the metadata and the log. Any other
    mix raises :class:`LifecycleError` naming the versions and their days.
    """
    days: dict[str, list[str]] = {}
    for day, version in sorted(versions_by_day.items()):
        days.setdefault(version, []).append(day)
    if len(days) < 2:
        return None
    mixed = "; ".join(f"{version}: {', '.join(keys)}" for version, keys in sorted(days.items()))
    newest = max(days, key=lambda version: days[version][-1])
    records = {version: ledger.get_feature_set(version) for version in days}
    status = {
        version: record.status if record else "unregistered" for version, record in records.items()
    }
    if status[newest] == "production" and all(
        status[version] == "retired" for version in days if version != newest
    ):
        return f"days of retired feature sets and of {newest}, which replaced them ({mixed})"
    raise LifecycleError(
        f"the training set would mix feature-set versions ({mixed}); re-materialize those "
        "days' features with one feature set, or set until before the change"
    )


def production_feature_set(ledger: Ledger, name: str) -> FeatureSetRecord | None:
    """The production set a candidate must beat: the most recently promoted one of its name."""
    production = ledger.list_feature_sets(name=name, status="production")
    return max(production, key=lambda record: record.updated_at) if production else None


def transition(
    ledger: Ledger, version_id: str, to_status: str, *, actor: str, reason: str
) -> FeatureSetStatusChange:
    """Any allowed change except to production, which needs its evidence."""
    record = _require(ledger, version_id)
    if to_status not in STATUSES:
        raise LifecycleError(f"unknown status {to_status!r}; statuses: {', '.join(STATUSES)}")
    if to_status == "production":
        raise LifecycleError(
            f"{version_id} reaches production only through a promotion with evidence "
            "(quality, leakage, drift stability, ablation)"
        )
    allowed = TRANSITIONS[record.status]
    if to_status not in allowed:
        raise LifecycleError(
            f"{version_id} is {record.status}; it may move to "
            f"{', '.join(allowed) or 'nothing (retired is final)'}, not {to_status}"
        )
    return ledger.set_feature_set_status(
        version_id, to_status, expected_from=record.status, actor=actor, reason=reason
    )


def promote_feature_set(
    ledger: Ledger,
    version_id: str,
    *,
    assessment: FeatureSetAssessment,
    ablation_run_id: str | None,
    actor: str,
    environment: Environment | None = None,
    run_id: str | None = None,
) -> PromotionDecision:
    """Judge a candidate on all four criteria; promote it, or audit the refusal with reasons.

    Every criterion is evaluated even after one fails, so a refusal lists all that is missing
    rather than one thing at a time.
    """
    (environment or current_environment()).require_promotion(f"feature set {version_id}")
    record = _require(ledger, version_id)
    if record.status != "candidate":
        raise LifecycleError(
            f"{version_id} is {record.status}; only a candidate can be promoted to production"
        )
    if assessment.version_id != version_id:
        raise LifecycleError(f"the assessment is of {assessment.version_id}, not of {version_id}")
    baseline = production_feature_set(ledger, record.name)
    run = ledger.get_experiment_run(ablation_run_id) if ablation_run_id else None
    ablation = ablation_criterion(
        run, candidate=version_id, baseline=None if baseline is None else baseline.version_id
    )
    decision = PromotionDecision(
        version_id=version_id,
        baseline_version=None if baseline is None else baseline.version_id,
        promoted=all(c.passed for c in (*assessment.criteria, ablation)),
        criteria=(*assessment.criteria, ablation),
    )
    evidence = {**decision.evidence(), "days": list(assessment.days)}
    if decision.promoted:
        # The production set it beat is retired in the same transaction: one production set
        # per name, so nothing downstream has to guess which of two is meant.
        ledger.promote_to_production(
            version_id,
            actor=actor,
            reason=decision.reason,
            evidence=evidence,
            run_id=run_id,
        )
    else:
        ledger.audit(
            "feature_set_promotion_refused",
            actor=actor,
            subject=f"feature_set:{version_id}",
            details={
                "reason": decision.reason,
                "failed": [criterion.name for criterion in decision.failed],
                **evidence,
            },
            run_id=run_id,
        )
    return decision


def _require(ledger: Ledger, version_id: str) -> FeatureSetRecord:
    record = ledger.get_feature_set(version_id)
    if record is None:
        raise LifecycleError(f"feature set {version_id} is not registered in the ledger")
    return record


def spec_of(record: FeatureSetRecord) -> FeatureSetSpec:
    return FeatureSetSpec.from_dict(dict(record.spec))


__all__ = [
    "ABLATION_BASELINE_TAG",
    "CRITERIA",
    "STATUSES",
    "TRANSITIONS",
    "CriterionResult",
    "FeatureSetAssessment",
    "LifecycleError",
    "PromotionDecision",
    "assess_feature_set",
    "compute_window",
    "feature_set_mix",
    "production_feature_set",
    "promote_feature_set",
    "register_feature_set",
    "run_ablation",
    "spec_of",
    "transition",
]
