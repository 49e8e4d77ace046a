"""The promotion gate: the fast resampled metrics against scikit-learn on the literal resamples,
the paired moving-block bootstrap's behaviour on synthetic detectors, and decide()'s verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from aiops_assets.core.promotion import (
    BLOCKING_CHECKS,
    HOLDOUT_IMPROVEMENT,
    METRICS,
    NO_BLOCKING_CHECKS,
    NO_CHAMPION,
    NO_PAIRED_HOLDOUT,
    NO_SHADOW,
    SHADOW,
    Criterion,
    GateConfig,
    GateDecision,
    ScoredRows,
    block_indices,
    block_starts,
    block_weights,
    decide,
    metric_value,
    paired_bootstrap,
    shadow_compare,
    weighted_metric_values,
)

ROWS = 3000
THRESHOLD = 1.5


def bursty_labels(rng: np.random.Generator, rows: int = ROWS) -> np.ndarray:
    """Anomalies come in bursts of consecutive rows, as incidents do in telemetry."""
    labels = np.zeros(rows, np.int8)
    for start in rng.choice(rows - 15, 12, replace=False):
        labels[start : start + 15] = 1
    return labels


def detector_pair(
    seed: int, candidate_signal: float, champion_signal: float = 1.0
) -> tuple[ScoredRows, ScoredRows]:
    """Two detectors on the same rows; a larger signal separates anomalies better."""
    rng = np.random.default_rng(seed)
    labels = bursty_labels(rng)
    champion = labels * champion_signal + rng.normal(size=ROWS)
    candidate = labels * candidate_signal + rng.normal(size=ROWS)
    return (
        ScoredRows(labels=labels, scores=candidate, threshold=THRESHOLD),
        ScoredRows(labels=labels, scores=champion, threshold=THRESHOLD),
    )


def bootstrap(
    candidate: ScoredRows, champion: ScoredRows, **overrides: object
) -> dict[str, object]:
    settings_: dict[str, object] = {
        "metric": "pr_auc",
        "samples": 1000,
        "block_rows": 60,
        "confidence": 0.95,
        "margin": 0.0,
        "seed": 0,
    }
    settings_.update(overrides)
    return paired_bootstrap(candidate, champion, **settings_).to_dict()  # type: ignore[arg-type]


def sklearn_metric(metric: str, labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    if metric == "pr_auc":
        return float(average_precision_score(labels, scores)) if labels.any() else 0.0
    function = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[metric]
    return float(function(labels, scores >= threshold, zero_division=0))


# --- the fast path equals scikit-learn on the literal resamples ---------------------------------


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_weighted_metrics_equal_sklearn_on_the_resampled_rows(data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 40), label="rows")
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=rows, max_size=rows)))
    # Few distinct scores, so ties (within and across labels) are the rule, not the exception.
    scores = np.array(
        data.draw(st.lists(st.integers(0, 4), min_size=rows, max_size=rows)), dtype=float
    )
    threshold = float(data.draw(st.integers(0, 5)))
    resamples = [
        np.array(data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=2 * rows)))
        for _ in range(3)
    ]
    weights = np.stack([np.bincount(index, minlength=rows) for index in resamples])
    scored = ScoredRows(labels=labels, scores=scores, threshold=threshold)
    for metric in METRICS:
        fast = weighted_metric_values(scored, metric, weights)
        expected = [sklearn_metric(metric, labels[i], scores[i], threshold) for i in resamples]
        np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-12, err_msg=metric)


def test_metric_value_equals_sklearn_with_continuous_scores() -> None:
    candidate, _ = detector_pair(seed=3, candidate_signal=1.5)
    for metric in METRICS:
        expected = sklearn_metric(metric, candidate.labels, candidate.scores, THRESHOLD)
        assert metric_value(candidate, metric) == pytest.approx(expected, abs=1e-12)


def test_metrics_are_zero_without_positives() -> None:
    rows = ScoredRows(labels=np.zeros(5), scores=np.arange(5.0), threshold=2.0)
    assert [metric_value(rows, metric) for metric in METRICS] == [0.0] * 4


@pytest.mark.parametrize(("rows", "block"), [(1000, 60), (100, 7), (10, 60), (61, 60), (5, 1)])
def test_block_weights_count_the_moving_block_indices(rows: int, block: int) -> None:
    starts = block_starts(np.random.default_rng(1), rows, block, 25)
    indices = block_indices(starts, rows, block)
    assert indices.shape == (25, rows)
    assert indices.min() >= 0 and indices.max() < rows
    # Contiguous runs: within a block each index is its predecessor + 1.
    runs = indices[:, : (rows // min(block, rows)) * min(block, rows)].reshape(
        25, -1, min(block, rows)
    )
    assert (np.diff(runs, axis=2) == 1).all()
    expected = np.stack([np.bincount(row, minlength=rows) for row in indices])
    np.testing.assert_array_equal(block_weights(starts, rows, block), expected)


# --- the bootstrap -------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    candidate, champion = detector_pair(seed=0, candidate_signal=1.15)
    assert bootstrap(candidate, champion, seed=7) == bootstrap(candidate, champion, seed=7)
    assert bootstrap(candidate, champion, seed=7) != bootstrap(candidate, champion, seed=8)


def test_a_clearly_better_candidate_beats_the_noise() -> None:
    candidate, champion = detector_pair(seed=0, candidate_signal=3.0)
    result = bootstrap(candidate, champion)
    assert result["ci_low"] > 0.3  # type: ignore[operator]
    assert result["ci_low"] <= result["observed_difference"] <= result["ci_high"]  # type: ignore[operator]
    assert result["probability_not_better"] == 0.0


def test_an_identical_candidate_differs_by_exactly_zero_in_every_resample() -> None:
    # Paired: both models see the same resampled rows, so identical scores never differ.
    _, champion = detector_pair(seed=0, candidate_signal=1.0)
    twin = ScoredRows(labels=champion.labels, scores=champion.scores.copy(), threshold=THRESHOLD)
    result = bootstrap(twin, champion)
    assert result["ci_low"] == result["ci_high"] == result["observed_difference"] == 0.0
    assert result["probability_not_better"] == 1.0


def test_a_slightly_better_but_noisy_candidate_is_not_distinguishable() -> None:
    candidate, champion = detector_pair(seed=0, candidate_signal=1.15)
    result = bootstrap(candidate, champion)
    assert result["observed_difference"] > 0.0  # type: ignore[operator]
    assert result["ci_low"] <= 0.0 < result["ci_high"]  # type: ignore[operator]
    assert result["probability_not_better"] > 0.05  # type: ignore[operator]


def test_blocks_widen_the_interval_when_detection_varies_by_incident() -> None:
    # The candidate catches an incident entirely or not at all: its 15 rows are one piece of
    # evidence, not 15. Resampling single rows would pretend otherwise and narrow the interval.
    rng = np.random.default_rng(0)
    labels = np.zeros(ROWS, np.int8)
    strength = np.zeros(ROWS)
    for start in rng.choice(np.arange(0, ROWS - 30, 60), 12, replace=False):
        labels[start : start + 15] = 1
        strength[start : start + 15] = rng.choice([0.0, 4.0])
    candidate = ScoredRows(labels, strength + 0.3 * rng.normal(size=ROWS), THRESHOLD)
    champion = ScoredRows(labels, labels + 0.3 * rng.normal(size=ROWS), THRESHOLD)
    blocks = bootstrap(candidate, champion, block_rows=60)
    rows = bootstrap(candidate, champion, block_rows=1)
    width_blocks = blocks["ci_high"] - blocks["ci_low"]  # type: ignore[operator]
    width_rows = rows["ci_high"] - rows["ci_low"]  # type: ignore[operator]
    assert width_blocks > 2 * width_rows


def test_resamples_without_positives_are_counted_and_score_zero() -> None:
    labels = np.zeros(600, np.int8)
    labels[10:12] = 1
    candidate = ScoredRows(labels=labels, scores=labels * 2.0, threshold=1.0)
    champion = ScoredRows(labels=labels, scores=np.zeros(600), threshold=1.0)
    result = bootstrap(candidate, champion, samples=400, block_rows=20)
    missing = result["resamples_without_positives"]
    assert 0 < missing < 400  # type: ignore[operator]
    assert result["probability_not_better"] == pytest.approx(missing / 400)  # type: ignore[operator]


def test_bootstrap_rejects_rows_that_are_not_the_same() -> None:
    candidate, champion = detector_pair(seed=0, candidate_signal=2.0)
    shifted = ScoredRows(labels=np.roll(champion.labels, 1), scores=champion.scores, threshold=1)
    with pytest.raises(ValueError, match="same labels"):
        bootstrap(candidate, shifted)


# --- decide ---------------------------------------------------------------------------------------


def gate(**overrides: object) -> GateDecision:
    candidate, champion = detector_pair(seed=0, candidate_signal=3.0)
    arguments: dict[str, object] = {
        "candidate_id": "detector v2",
        "champion_id": "detector v1",
        "blocking_checks": {"raw_telemetry/schema": True, "features/no_nulls": True},
        "holdout": (candidate, champion),
        "shadow": None,
        "config": GateConfig(),
    }
    arguments.update(overrides)
    return decide(**arguments)  # type: ignore[arg-type]


def criterion(decision: GateDecision, name: str) -> Criterion:
    return next(item for item in decision.criteria if item.name == name)


def test_a_clearly_better_candidate_is_promoted() -> None:
    decision = gate()
    assert decision.promote, decision.reason
    assert decision.reason.startswith("all criteria passed")
    assert decision.evidence["bootstrap"]["ci_low"] > 0
    detail = criterion(decision, HOLDOUT_IMPROVEMENT).detail
    assert "CI lower bound" in detail and "> margin +0.0000" in detail


def test_an_identical_candidate_is_refused_as_noise() -> None:
    _, champion = detector_pair(seed=0, candidate_signal=1.0)
    decision = gate(holdout=(champion, champion))
    assert not decision.promote
    assert decision.reason.startswith(f"{HOLDOUT_IMPROVEMENT} failed")
    assert "<= margin" in decision.reason


def test_a_slightly_better_but_noisy_candidate_is_refused() -> None:
    decision = gate(holdout=detector_pair(seed=0, candidate_signal=1.15))
    assert not decision.promote
    assert decision.evidence["bootstrap"]["observed_difference"] > 0
    assert not criterion(decision, HOLDOUT_IMPROVEMENT).passed


def test_the_margin_is_respected() -> None:
    observed = gate().evidence["bootstrap"]
    below = gate(config=GateConfig(margin=observed["ci_low"] - 0.01))
    above = gate(config=GateConfig(margin=observed["ci_low"] + 0.01))
    assert below.promote
    assert not above.promote
    assert above.evidence["bootstrap"]["margin"] == pytest.approx(observed["ci_low"] + 0.01)
    assert above.evidence["bootstrap"]["probability_not_better"] > 0


def test_a_failing_blocking_check_refuses_and_names_the_check() -> None:
    decision = gate(blocking_checks={"raw_telemetry/schema": True, "features/no_nulls": False})
    assert not decision.promote
    assert "features/no_nulls" in decision.reason
    assert "raw_telemetry/schema" not in criterion(decision, BLOCKING_CHECKS).detail
    # The other criteria are still evaluated, so the evidence is complete.
    assert criterion(decision, HOLDOUT_IMPROVEMENT).passed
    assert "features/no_nulls" in decision.markdown()


def test_no_blocking_checks_pass() -> None:
    decision = gate(blocking_checks={})
    assert criterion(decision, BLOCKING_CHECKS).detail == NO_BLOCKING_CHECKS
    assert decision.promote


def test_a_champion_that_cannot_score_the_holdout_refuses() -> None:
    decision = gate(holdout=None)
    assert not decision.promote
    assert criterion(decision, HOLDOUT_IMPROVEMENT).detail == NO_PAIRED_HOLDOUT
    assert decision.evidence["bootstrap"] is None


def test_the_first_model_promotes_on_its_checks_alone() -> None:
    decision = gate(champion_id=None, holdout=None)
    assert decision.promote
    assert criterion(decision, HOLDOUT_IMPROVEMENT).detail == NO_CHAMPION
    assert criterion(decision, SHADOW).detail == NO_CHAMPION
    refused = gate(champion_id=None, holdout=None, blocking_checks={"features/no_nulls": False})
    assert not refused.promote


def test_no_served_partitions_pass_the_shadow() -> None:
    assert criterion(gate(shadow=None), SHADOW).detail == NO_SHADOW


def test_a_shadow_alert_rate_increase_refuses() -> None:
    rng = np.random.default_rng(5)
    unlabelled = np.zeros(500, np.int8)  # served partitions carry no labels yet
    scores = rng.normal(size=500)
    champion = ScoredRows(labels=unlabelled, scores=scores, threshold=2.0)
    noisier = ScoredRows(labels=unlabelled, scores=scores, threshold=1.0)
    result = shadow_compare(
        noisier, champion, metric="f1", tolerance=0.02, max_alert_rate_increase=0.01
    )
    assert result.candidate is None and result.champion is None
    assert result.regression
    assert result.candidate_alert_rate > result.champion_alert_rate + 0.1
    decision = gate(shadow=(noisier, champion), shadow_partitions=["2026-01-18", "2026-01-19"])
    assert not decision.promote
    assert decision.reason.startswith(f"{SHADOW} failed") and "alert rate" in decision.reason
    assert decision.evidence["shadow"]["partitions"] == ["2026-01-18", "2026-01-19"]
    calm = gate(shadow=(champion, champion), shadow_partitions=["2026-01-19"])
    assert calm.promote, calm.reason


def test_a_shadow_metric_regression_refuses() -> None:
    candidate, champion = detector_pair(seed=1, candidate_signal=0.2, champion_signal=3.0)
    # Same alert rate for both, so only the labelled metric can flag the regression.
    quieter = ScoredRows(
        labels=candidate.labels,
        scores=candidate.scores,
        threshold=float(np.quantile(candidate.scores, np.mean(champion.scores < THRESHOLD))),
    )
    result = shadow_compare(
        quieter, champion, metric="f1", tolerance=0.02, max_alert_rate_increase=0.01
    )
    assert result.regression and "f1" in result.reasons[0]
    assert len(result.reasons) == 1


def test_evidence_is_json_serializable_and_markdown_names_the_criteria() -> None:
    candidate, champion = detector_pair(seed=0, candidate_signal=3.0)
    decision = gate(
        shadow=(candidate, champion),
        shadow_partitions=["2026-01-19"],
        blocking_checks={"features/no_nulls": False},
    )
    evidence = json.loads(json.dumps(decision.evidence, allow_nan=False))
    assert evidence["config"] == json.loads(json.dumps(GateConfig().__dict__))
    assert [item["name"] for item in evidence["criteria"]] == [
        BLOCKING_CHECKS,
        HOLDOUT_IMPROVEMENT,
        SHADOW,
    ]
    assert evidence["shadow_partitions"] == ["2026-01-19"]
    report = decision.markdown()
    for name in (BLOCKING_CHECKS, HOLDOUT_IMPROVEMENT, SHADOW):
        assert f"| {name} |" in report
    assert "❌" in report and "✅" in report
    assert "Failed blocking checks" in report and "bootstrap" in report.lower()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric": "roc_auc"}, "metric must be one of"),
        ({"shadow_metric": "accuracy"}, "shadow_metric must be one of"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"bootstrap_samples": 0}, "bootstrap_samples"),
        ({"block_rows": 0}, "block_rows"),
        ({"shadow_tolerance": -0.1}, "shadow_tolerance"),
        ({"max_alert_rate_increase": -0.1}, "max_alert_rate_increase"),
        ({"margin": float("nan")}, "margin"),
    ],
)
def test_gate_config_rejects_nonsense(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GateConfig(**overrides)  # type: ignore[arg-type]


def test_scored_rows_reject_mismatched_lengths_and_bad_values() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        ScoredRows(labels=np.zeros(3), scores=np.zeros(4), threshold=0.0)
    with pytest.raises(ValueError, match="0 or 1"):
        ScoredRows(labels=np.array([0, 2]), scores=np.zeros(2), threshold=0.0)
    with pytest.raises(ValueError, match="finite"):
        ScoredRows(labels=np.zeros(2), scores=np.array([0.0, np.nan]), threshold=0.0)
