"""Label health: broken labels become a suspect with evidence; quiet days do not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.label_health import PROBLEMS, LabelHealth, assess_labels

ROWS = 1728  # one day of six services at 5-minute steps


def _day(seed: int, *, incidents: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Labels in incident windows, alerts on most incident rows and a few false alarms."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(ROWS)
    for start in rng.choice(ROWS - 60, size=incidents, replace=False):
        labels[start : start + int(rng.integers(6, 20)) * 3 : 3] = 1
    alerts = np.where(labels == 1, rng.random(ROWS) < 0.8, rng.random(ROWS) < 0.002)
    return labels, alerts.astype(float)


def _references(count: int = 7) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        f"2026-01-{day:02d}": _day(day, incidents=int(2 + day % 3)) for day in range(1, count + 1)
    }


def test_a_normal_day_is_healthy() -> None:
    labels, alerts = _day(100)
    health = assess_labels(labels, alerts, _references(), partition="2026-01-08")
    assert health.healthy and health.evidence == 0.0
    assert health.words.startswith("labels: healthy (positive rate")
    assert health.reference_precision == pytest.approx(0.9, abs=0.1)


def test_labels_all_zero_while_the_model_alerts_as_usual_are_a_collapse() -> None:
    _, alerts = _day(100, incidents=4)
    health = assess_labels(np.zeros(ROWS), alerts, _references(), partition="2026-01-08")

    assert health.problems == ("collapse",)
    assert health.evidence > 0.9
    assert health.p_value is not None and health.p_value < 1e-6
    assert health.label_rate == 0.0 and health.alert_rate == pytest.approx(alerts.mean())
    assert health.words.startswith(f"labels: every label is 0; 0 of {int(alerts.sum())} alerts")


def test_a_quiet_day_is_not_a_collapse() -> None:
    rng = np.random.default_rng(7)
    false_alarms = (rng.random(ROWS) < 0.002).astype(float)  # the usual few
    health = assess_labels(np.zeros(ROWS), false_alarms, _references(), partition="2026-01-08")
    assert health.healthy and health.evidence == 0.0
    assert health.label_rate == 0.0


def test_a_noisier_model_with_intact_labels_is_not_the_labels_fault() -> None:
    labels, alerts = _day(100)
    noisy = np.maximum(alerts, np.random.default_rng(3).random(ROWS) < 0.05)
    health = assess_labels(labels, noisy.astype(float), _references(), partition="2026-01-08")
    assert health.healthy
    assert health.p_value is not None and health.p_value < 1e-6  # precision fell: the model's


def test_constant_and_missing_labels_are_flagged() -> None:
    _, alerts = _day(100)
    ones = assess_labels(np.ones(ROWS), alerts, _references(), partition="p")
    assert ones.problems == ("constant",) and ones.evidence == 1.0
    assert ones.words.startswith("labels: every label is 1 (references:")

    gone = assess_labels(np.full(ROWS, np.nan), alerts, _references(), partition="p")
    assert gone.problems == ("missing",) and gone.evidence == 1.0
    assert gone.label_rate is None and gone.missing_rate == 1.0
    assert gone.words == "labels: 100% of labels missing (references: 0%)"

    labels, _ = _day(100)
    labels[::3] = np.nan
    part = assess_labels(labels, alerts, _references(), partition="p")
    assert part.problems == ("missing",) and 0.5 < part.evidence < 0.8


def test_a_label_rate_that_jumps_while_alerts_stay_is_a_rate_shift() -> None:
    steady = {f"r{day}": _steady(20, 20) for day in range(7)}
    health = assess_labels(*_steady(200, 20), steady, partition="p")
    assert health.problems == ("rate_shift",)
    assert 0.5 <= health.evidence <= 0.6  # the model might be missing a new kind of incident
    assert "positive rate" in health.words and "while alerts stayed" in health.words


def _steady(positives: int, alerts: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(ROWS)
    labels[:positives] = 1
    alerted = np.zeros(ROWS)
    alerted[: alerts - 2] = 1
    alerted[-2:] = 1
    return labels, alerted


@settings(max_examples=40, deadline=None)
@given(
    positive_rate=st.floats(min_value=0.0, max_value=1.0),
    alert_rate=st.floats(min_value=0.0, max_value=1.0),
    missing_rate=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_any_labels_give_bounded_evidence_and_known_problems(
    positive_rate: float, alert_rate: float, missing_rate: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    labels = (rng.random(300) < positive_rate).astype(float)
    labels[rng.random(300) < missing_rate] = np.nan
    alerts = (rng.random(300) < alert_rate).astype(float)
    health = assess_labels(labels, alerts, _references(2), partition="p")
    assert 0.0 <= health.evidence <= 1.0
    assert set(health.problems) <= set(PROBLEMS)
    assert (health.evidence > 0) == bool(health.problems)
    assert health.p_value is None or 0.0 <= health.p_value <= 1.0


_rate = st.none() | st.floats(min_value=0, max_value=1)


@given(
    health=st.builds(
        LabelHealth,
        partition=st.text(max_size=12),
        label_rate=_rate,
        reference_label_rate=_rate,
        alert_rate=st.floats(min_value=0, max_value=1),
        reference_alert_rate=st.floats(min_value=0, max_value=1),
        reference_precision=_rate,
        problems=st.lists(st.sampled_from(PROBLEMS), unique=True).map(tuple),
        evidence=st.floats(min_value=0, max_value=1),
        p_value=_rate,
        words=st.text(max_size=40),
        missing_rate=st.floats(min_value=0, max_value=1),
    )
)
def test_label_health_round_trips_through_json(health: LabelHealth) -> None:
    data = json.loads(json.dumps(health.to_dict(), allow_nan=False))
    assert LabelHealth.from_dict(data) == health


def test_user_mistakes_are_one_line_errors() -> None:
    labels, alerts = _day(1)
    with pytest.raises(ValueError, match="1728 labels but 3 alerts"):
        assess_labels(labels, alerts[:3], _references(), partition="p")
    with pytest.raises(ValueError, match=r"labels must be 0, 1 or NaN; found \[2.0\]"):
        assess_labels(np.full(ROWS, 2.0), alerts, _references(), partition="p")
    with pytest.raises(ValueError, match="alerts must be 0 or 1"):
        assess_labels(labels, np.full(ROWS, 0.5), _references(), partition="p")
    with pytest.raises(ValueError, match="at least one reference"):
        assess_labels(labels, alerts, {}, partition="p")
    with pytest.raises(ValueError, match="unknown label problems"):
        LabelHealth("p", None, None, 0.0, 0.0, None, ("sad",), 0.0, None, "")
