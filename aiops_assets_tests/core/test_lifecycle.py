"""A feature set reaches production only with its four pieces of evidence, and says what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from aiops_assets.core import telemetry
from aiops_assets.core.environments import EnvironmentRefusal, get_environment
from aiops_assets.core.experiments import ExperimentRun, criterion_met
from aiops_assets.core.features import FeatureSetSpec, Ratio
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import (
    ABLATION_BASELINE_TAG,
    FeatureSetAssessment,
    LifecycleError,
    ablation_criterion,
    assess_feature_set,
    production_feature_set,
    promote_feature_set,
    register_feature_set,
    run_ablation,
    transition,
)

KEY = b"lifecycle-test-key-" + b"k" * 13
PRODUCTION = FeatureSetSpec()
# Adds a latency-spread ratio: stable on the reference scenario, and better on F1 (not PR-AUC).
CANDIDATE = FeatureSetSpec(
    version=5,
    ratios=(
        Ratio("error_ratio", "error_rate", "request_rate"),
        Ratio("latency_spread", "latency_p99_ms", "latency_p50_ms"),
    ),
)
# A two-hour z-score whose memory column drifts between ordinary days.
RESTLESS = FeatureSetSpec(version=4, windows=("2h", "24h"))
REFERENCE_WINDOW = ["2026-01-06", "2026-01-07", "2026-01-08"]
TRAINING_DAYS = [f"2026-01-{day:02d}" for day in range(5, 11)]
DEV = get_environment("dev")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    scenario = telemetry.default_scenario(start=date(2026, 1, 5), days=6, seed=20260105)
    return telemetry.generate(scenario, date(2026, 1, 5), date(2026, 1, 11))


@pytest.fixture(scope="module")
def candidate_assessment(frame: pd.DataFrame) -> FeatureSetAssessment:
    return assess_feature_set(frame, CANDIDATE, REFERENCE_WINDOW, baseline=PRODUCTION)


@pytest.fixture(scope="module")
def f1_ablation(frame: pd.DataFrame) -> ExperimentRun:
    return run_ablation(
        frame,
        CANDIDATE,
        PRODUCTION,
        TRAINING_DAYS,
        hypothesis="p99/p50 spread separates latency incidents from load",
        success_criterion="delta.f1>=0.0",
        run_id="ablation-f1",
        at=datetime(2026, 1, 11, tzinfo=UTC),
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ticks = iter(range(1_000_000))
    start = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    opened = Ledger(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        audit_key=KEY,
        clock=lambda: start + timedelta(seconds=next(ticks)),
    )
    register_feature_set(opened, PRODUCTION, actor="local:ops", status="production")
    register_feature_set(opened, CANDIDATE, actor="local:ana")
    transition(opened, CANDIDATE.version_id, "candidate", actor="local:ana", reason="looks good")
    yield opened
    opened.dispose()


def test_the_candidate_passes_the_data_criteria_and_its_ablation_meets_its_criterion(
    candidate_assessment: FeatureSetAssessment, f1_ablation: ExperimentRun
) -> None:
    assert [c.name for c in candidate_assessment.criteria] == [
        "quality",
        "leakage",
        "drift_stability",
    ]
    assert all(c.passed for c in candidate_assessment.criteria), candidate_assessment
    assert f1_ablation.criterion_met is True
    assert f1_ablation.metrics["delta.f1"] == pytest.approx(
        f1_ablation.metrics["f1"] - f1_ablation.metrics["baseline.f1"]
    )
    assert f1_ablation.tags[ABLATION_BASELINE_TAG] == PRODUCTION.version_id
    assert f1_ablation.feature_set_version == CANDIDATE.version_id


def test_promotion_without_an_ablation_is_refused_and_says_so(
    ledger: Ledger, candidate_assessment: FeatureSetAssessment
) -> None:
    decision = promote_feature_set(
        ledger,
        CANDIDATE.version_id,
        assessment=candidate_assessment,
        ablation_run_id=None,
        actor="local:ana",
        environment=DEV,
    )
    assert not decision.promoted
    assert [c.name for c in decision.failed] == ["ablation"]
    assert "ablation failed (no ablation run" in decision.reason
    record = ledger.get_feature_set(CANDIDATE.version_id)
    assert record is not None and record.status == "candidate"
    refusal = ledger.audit_entries()[-1]
    assert refusal.action == "feature_set_promotion_refused"
    assert refusal.details["failed"] == ["ablation"]
    assert ledger.verify_audit().ok


def test_an_ablation_whose_declared_criterion_was_not_met_is_refused(
    ledger: Ledger, candidate_assessment: FeatureSetAssessment, f1_ablation: ExperimentRun
) -> None:
    # The same two trained arms, judged by a criterion declared on PR-AUC instead of F1.
    criterion = "delta.pr_auc>=0.0"
    pr_auc_run = replace(
        f1_ablation,
        run_id="ablation-pr-auc",
        success_criterion=criterion,
        criterion_met=criterion_met(criterion, f1_ablation.metrics),
    )
    assert pr_auc_run.criterion_met is False
    ledger.record_experiment_run(pr_auc_run)
    decision = promote_feature_set(
        ledger,
        CANDIDATE.version_id,
        assessment=candidate_assessment,
        ablation_run_id="ablation-pr-auc",
        actor="local:ana",
        environment=DEV,
    )
    assert not decision.promoted
    assert "criterion 'delta.pr_auc>=0.0' was not met" in decision.reason


def test_a_feature_set_that_drifts_on_ordinary_days_is_refused(
    ledger: Ledger, frame: pd.DataFrame, f1_ablation: ExperimentRun
) -> None:
    register_feature_set(ledger, RESTLESS, actor="local:ana")
    transition(ledger, RESTLESS.version_id, "candidate", actor="local:ana", reason="try")
    assessment = assess_feature_set(frame, RESTLESS, REFERENCE_WINDOW, baseline=PRODUCTION)
    ledger.record_experiment_run(replace(f1_ablation, feature_set_version=RESTLESS.version_id))
    decision = promote_feature_set(
        ledger,
        RESTLESS.version_id,
        assessment=assessment,
        ablation_run_id="ablation-f1",
        actor="local:ana",
        environment=DEV,
    )
    assert [c.name for c in decision.failed] == ["drift_stability"]
    assert "memory_pct__z_2h" in decision.reason


def test_promotion_with_every_criterion_is_recorded_with_its_evidence(
    ledger: Ledger, candidate_assessment: FeatureSetAssessment, f1_ablation: ExperimentRun
) -> None:
    ledger.record_experiment_run(f1_ablation)
    decision = promote_feature_set(
        ledger,
        CANDIDATE.version_id,
        assessment=candidate_assessment,
        ablation_run_id="ablation-f1",
        actor="local:ana",
        environment=DEV,
    )
    assert decision.promoted, decision.reason
    assert decision.baseline_version == PRODUCTION.version_id
    change = ledger.feature_set_history(CANDIDATE.version_id)[-1]
    assert (change.from_status, change.to_status) == ("candidate", "production")
    assert [c["name"] for c in change.evidence["criteria"]] == [
        "quality",
        "leakage",
        "drift_stability",
        "ablation",
    ]
    assert all(c["passed"] for c in change.evidence["criteria"])
    assert change.evidence["criteria"][3]["evidence"]["run_id"] == "ablation-f1"
    promoted = production_feature_set(ledger, "telemetry_core")
    assert promoted is not None and promoted.version_id == CANDIDATE.version_id
    audited = [entry for entry in ledger.audit_entries() if entry.action == "feature_set_status"]
    assert audited[-1].details["to_status"] == "production"
    assert ledger.verify_audit().ok


def test_the_sandbox_cannot_promote_whatever_the_evidence(
    ledger: Ledger, candidate_assessment: FeatureSetAssessment, f1_ablation: ExperimentRun
) -> None:
    ledger.record_experiment_run(f1_ablation)
    with pytest.raises(EnvironmentRefusal, match="sandbox environment cannot promote"):
        promote_feature_set(
            ledger,
            CANDIDATE.version_id,
            assessment=candidate_assessment,
            ablation_run_id="ablation-f1",
            actor="local:ana",
            environment=get_environment("sandbox"),
        )
    record = ledger.get_feature_set(CANDIDATE.version_id)
    assert record is not None and record.status == "candidate"


def test_transitions_follow_the_lifecycle(ledger: Ledger) -> None:
    with pytest.raises(LifecycleError, match="only through a promotion"):
        transition(ledger, CANDIDATE.version_id, "production", actor="a", reason="skip")
    transition(ledger, CANDIDATE.version_id, "retired", actor="a", reason="superseded")
    with pytest.raises(LifecycleError, match="retired is final"):
        transition(ledger, CANDIDATE.version_id, "candidate", actor="a", reason="again")
    with pytest.raises(LifecycleError, match="already has a production feature set"):
        register_feature_set(ledger, RESTLESS, actor="a", status="production")
    history = [
        (c.from_status, c.to_status) for c in ledger.feature_set_history(CANDIDATE.version_id)
    ]
    assert history == [
        (None, "experimental"),
        ("experimental", "candidate"),
        ("candidate", "retired"),
    ]


def test_an_ablation_needs_its_criterion_before_it_trains(frame: pd.DataFrame) -> None:
    with pytest.raises(LifecycleError, match="declared before it runs"):
        run_ablation(
            frame, CANDIDATE, PRODUCTION, TRAINING_DAYS, hypothesis="h", success_criterion=" "
        )


def test_an_ablation_against_another_baseline_does_not_count(f1_ablation: ExperimentRun) -> None:
    other = replace(f1_ablation, tags={ABLATION_BASELINE_TAG: RESTLESS.version_id})
    result = ablation_criterion(
        other, candidate=CANDIDATE.version_id, baseline=PRODUCTION.version_id
    )
    assert not result.passed
    assert f"not against the production feature set {PRODUCTION.version_id}" in result.detail
    tuned = replace(
        f1_ablation, criterion_met=True, metrics={**f1_ablation.metrics, "delta.f1": -1.0}
    )
    # The stored verdict is not trusted: the criterion is re-evaluated on the recorded metrics.
    assert not ablation_criterion(
        tuned, candidate=CANDIDATE.version_id, baseline=PRODUCTION.version_id
    ).passed
