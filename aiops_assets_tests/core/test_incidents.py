"""The incident correlation engine on scripted ten-day histories where the cause is known.

Each scenario plants one cause among realistic decoys (a routine data refresh, an unrelated
package bump, a change deployed after the drop) and checks the cause comes out first, so a
change to the weights or the candidate rules that breaks attribution fails here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops_assets.core.incident_plot import PlotsUnavailable, plot_incident, top_drifted_features
from aiops_assets.core.incidents import (
    Change,
    DriftPoint,
    IncidentWindow,
    PerformancePoint,
    ScoringWeights,
    build_incident_report,
    correlation_ranker_baseline,
    find_incident_window,
    score_suspects,
)
from aiops_assets_tests.incident_scenarios import (
    DAYS,
    FEATURES,
    FIRST_BAD,
    PARTITIONS,
    SCENARIOS,
    Scenario,
    at,
    drift,
    evaluated_at,
    library_upgrade,
    performance,
    promotion,
    routine_data_refreshes,
)


def ranked_subjects(changes: list[Change], perf, drift_points) -> list[str]:
    report = build_incident_report("anomaly_detector", changes, perf, drift_points)
    assert report is not None
    return [s.change.summary for s in report.suspects]


# ---------------------------------------------------------------------------------------------
# Window finding
# ---------------------------------------------------------------------------------------------


def test_window_is_the_start_of_the_latest_failing_streak() -> None:
    perf = performance()
    window = find_incident_window(list(reversed(perf)))  # input order must not matter
    assert window is not None
    assert window.first_bad.partition == "2026-01-10"
    assert window.last_good is not None
    assert window.last_good.partition == "2026-01-09"


def test_no_failure_is_no_incident() -> None:
    assert find_incident_window(performance(failing_from=None)) is None
    assert find_incident_window([]) is None


def test_a_new_streak_after_a_recovery_is_the_incident() -> None:
    perf = performance(failing_from=None)
    failing = {2, 3, 7, 8}  # failed, recovered on day 4, failed again from day 7
    perf = [replace(p, passed=i not in failing) for i, p in enumerate(perf)]
    window = find_incident_window(perf)
    assert window is not None
    assert (window.last_good and window.last_good.partition) == PARTITIONS[6]
    assert window.first_bad.partition == PARTITIONS[7]


def test_at_reinvestigates_an_earlier_incident() -> None:
    perf = performance(failing_from=None)
    failing = {2, 3, 7, 8}
    perf = [replace(p, passed=i not in failing) for i, p in enumerate(perf)]
    # On day 5 the only incident known was the one that started with partition 2.
    window = find_incident_window(perf, at=evaluated_at(5))
    assert window is not None
    assert window.first_bad.partition == PARTITIONS[2]
    assert (window.last_good and window.last_good.partition) == PARTITIONS[1]
    # Mid-streak, the streak's first point is still the boundary, not the latest failure.
    mid = find_incident_window(perf, at=evaluated_at(8))
    assert mid is not None and mid.first_bad.partition == PARTITIONS[7]
    # Before anything failed there is nothing to explain.
    assert find_incident_window(perf, at=evaluated_at(1)) is None


def test_failing_from_the_first_evaluation_has_no_last_good() -> None:
    window = find_incident_window(performance(failing_from=0))
    assert window == IncidentWindow(last_good=None, first_bad=performance(failing_from=0)[0])


def test_a_rerun_partition_uses_its_latest_verdict() -> None:
    perf = performance()
    rerun = replace(perf[FIRST_BAD], at=evaluated_at(9) + timedelta(hours=3), passed=True)
    window = find_incident_window([rerun, *perf])  # the rerun may arrive first
    assert window is not None
    assert window.first_bad.partition == PARTITIONS[8]


# ---------------------------------------------------------------------------------------------
# Scenarios with a known cause
# ---------------------------------------------------------------------------------------------


def test_a_library_upgrade_is_blamed_through_the_features_in_its_details() -> None:
    scenario = library_upgrade()
    report = build_incident_report(
        "anomaly_detector", scenario.changes, scenario.performance, scenario.drift
    )
    assert report is not None and report.suspects[0].change == scenario.cause
    assert not scenario.cause.features, "the features are only in the capsule details"
    assert report.suspects[0].components["effect"] > 0.5


def test_a_promotion_of_the_failing_version_is_blamed_where_the_baseline_cannot() -> None:
    scenario = promotion()
    report = build_incident_report(
        "anomaly_detector", scenario.changes, scenario.performance, scenario.drift
    )
    assert report is not None and report.suspects[0].change == scenario.cause
    assert report.suspects[0].components["effect"] == 1.0
    assert report.verdict().startswith("v4's f1 went from 0.9")
    # The baseline, which can only rank features, confidently blames one whose drift is noise
    # (every effect below 0.12): chance correlation on ten partitions.
    feature, r = correlation_ranker_baseline(scenario.performance, scenario.drift)[0]
    assert r > 0.5
    assert max(p.effect for p in scenario.drift if p.feature == feature) < 0.12


def test_seasonal_drift_without_a_performance_drop_is_no_incident() -> None:
    weekly = {feature: 0.0 for feature in FEATURES}
    drift_points = [
        replace(p, effect=p.effect + 1.5 * (PARTITIONS.index(p.partition) % 7 >= 5), drifted=True)
        for p in drift(weekly)
        if p.feature.startswith("checkout")
    ]
    changes = routine_data_refreshes()
    assert (
        build_incident_report(
            "anomaly_detector", changes, performance(failing_from=None), drift_points
        )
        is None
    )


# ---------------------------------------------------------------------------------------------
# Scoring rules
# ---------------------------------------------------------------------------------------------


def test_candidates_are_the_window_plus_the_lookback_only() -> None:
    window = find_incident_window(performance())
    assert window is not None
    first_bad = window.first_bad

    def change(hours_before: float, partition: str | None = None) -> Change:
        return Change(
            kind="code",
            subject=f"asset_{hours_before}",
            at=first_bad.at - timedelta(hours=hours_before),
            summary=f"{hours_before} h before",
            partition=partition,
        )

    inside = [change(1), change(23), change(71)]
    outside = [change(-5), change(80)]
    backfill = change(-30, partition=first_bad.partition)
    suspects = score_suspects([*inside, *outside, backfill], performance(), drift(), window)
    # Change holds a details dict, so it is not hashable: compare summaries.
    assert {s.change.summary for s in suspects} == {c.summary for c in [*inside, backfill]}
    shorter = score_suspects(
        [*inside, *outside], performance(), drift(), window, lookback=timedelta(hours=12)
    )
    # The evaluation window (the 24 h between last good and first bad) is always searched.
    assert {s.change.summary for s in shorter} == {inside[0].summary, inside[1].summary}


def test_proximity_decays_with_the_half_life_outside_the_window() -> None:
    window = find_incident_window(performance())
    assert window is not None and window.last_good is not None
    early = Change(
        kind="code", subject="x", at=window.last_good.at - timedelta(hours=24), summary="early"
    )
    (suspect,) = score_suspects([early], performance(), drift(), window)
    assert suspect.components["proximity"] == pytest.approx(0.5 ** (48 / 24))
    weights = ScoringWeights(proximity_half_life_hours=48)
    (slow,) = score_suspects([early], performance(), drift(), window, weights=weights)
    assert slow.components["proximity"] == pytest.approx(0.5)


def test_lagged_drift_is_found_up_to_max_lag() -> None:
    # Drift one partition ahead of the drop, e.g. a contaminated training window.
    drift_points = drift({"payments.error_rate__sum_1h": 2.0}, from_day=FIRST_BAD - 1)
    window = find_incident_window(performance())
    assert window is not None
    change = Change(
        kind="data",
        subject="telemetry_snapshot",
        at=at(FIRST_BAD, 1),
        summary="s",
        features=("payments.error_rate__sum_1h",),
    )
    (lagged,) = score_suspects([change], performance(), drift_points, window)
    (lag0,) = score_suspects(
        [change], performance(), drift_points, window, weights=ScoringWeights(max_lag=0)
    )
    assert lagged.components["correlation"] > 0.95
    assert lag0.components["correlation"] < lagged.components["correlation"]
    assert "at lag 1" in lagged.explanation


def test_correlation_needs_four_aligned_points() -> None:
    perf = performance()[-3:]
    window = find_incident_window(perf)
    assert window is not None
    change = Change(
        kind="data", subject="s", at=window.first_bad.at, summary="s", features=(FEATURES[0],)
    )
    (suspect,) = score_suspects([change], perf, drift({FEATURES[0]: 3.0}), window)
    assert suspect.components["correlation"] == 0.0


def test_invalid_weights_are_rejected() -> None:
    with pytest.raises(ValueError, match="effect"):
        ScoringWeights(effect=-0.1)
    with pytest.raises(ValueError, match="half_life"):
        ScoringWeights(proximity_half_life_hours=0)
    with pytest.raises(ValueError, match="max_lag"):
        ScoringWeights(max_lag=-1)


_KINDS = ("data", "feature_set", "code", "config", "environment", "alias", "policy", "threshold")


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Change], list[PerformancePoint], list[DriftPoint]]:
    n = draw(st.integers(2, DAYS))
    passed = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    passed[draw(st.integers(0, n - 1))] = False
    unit = st.floats(0, 1, allow_nan=False)
    perf = [
        PerformancePoint(
            PARTITIONS[i],
            evaluated_at(i),
            passed[i],
            {"f1": draw(unit)},
            model_version=draw(st.integers(1, 3)),
        )
        for i in range(n)
    ]
    drift_points = [
        DriftPoint(PARTITIONS[i], f, draw(st.floats(-5, 50, allow_nan=False)), draw(st.booleans()))
        for i in range(n)
        for f in FEATURES[:3]
    ]
    changes = [
        Change(
            kind=draw(st.sampled_from(_KINDS)),
            subject=draw(st.sampled_from(["a", "b", "c"])),
            at=at(0) + timedelta(hours=draw(st.integers(0, 24 * n))),
            summary="s",
            partition=draw(st.none() | st.sampled_from(PARTITIONS[:n])),
            features=tuple(draw(st.lists(st.sampled_from(FEATURES), max_size=3))),
            lineage_distance=draw(st.none() | st.integers(-2, 5)),
            details={"to_version": draw(st.integers(1, 3))},
        )
        for _ in range(draw(st.integers(0, 8)))
    ]
    return changes, perf, drift_points


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), weights=st.builds(ScoringWeights, *(st.floats(0, 2),) * 4))
def test_scores_are_bounded_and_ranked(history, weights: ScoringWeights) -> None:
    changes, perf, drift_points = history
    window = find_incident_window(perf)
    assert window is not None
    suspects = score_suspects(changes, perf, drift_points, window, weights=weights)
    for suspect in suspects:
        assert set(suspect.components) == {"effect", "proximity", "lineage", "correlation"}
        assert all(0.0 <= v <= 1.0 for v in suspect.components.values())
        assert -1e-12 <= suspect.score <= weights.total + 1e-9
    keys = [(-s.score, -s.components["proximity"], s.change.subject) for s in suspects]
    assert keys == sorted(keys)


# ---------------------------------------------------------------------------------------------
# Baseline, report rendering
# ---------------------------------------------------------------------------------------------


def test_baseline_ranks_features_by_absolute_correlation() -> None:
    perf = performance()
    drift_points = drift({FEATURES[1]: 2.0, FEATURES[4]: 0.3})
    ranked = correlation_ranker_baseline(perf, drift_points)
    assert [f for f, _ in ranked][:2] == [FEATURES[1], FEATURES[4]]
    assert {f for f, _ in ranked} == set(FEATURES)
    values = [r for _, r in ranked]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= r <= 1.0 for r in values)
    # Against an independent computation: Pearson with the gap, which is the metric flipped.
    gap = np.array([-p.metrics["f1"] for p in perf])
    effect = np.array([p.effect for p in drift_points if p.feature == FEATURES[1]])
    assert ranked[0][1] == pytest.approx(abs(np.corrcoef(effect, gap)[0, 1]))


def _scenario_report():
    cause = Change(
        kind="config",
        subject="telemetry_snapshot",
        at=at(FIRST_BAD, 10),
        summary="checkout collector | sampling 10s -> 60s",
        partition=PARTITIONS[FIRST_BAD],
        features=("checkout.cpu_pct__mean_1h",),
        lineage_distance=2,
        before={"interval": "10s"},
        after={"interval": "60s", "since": at(FIRST_BAD, 10)},
    )
    changes = [cause, *routine_data_refreshes()]
    report = build_incident_report(
        "anomaly_detector", changes, performance(), drift({"checkout.cpu_pct__mean_1h": 2.0})
    )
    assert report is not None
    return report, cause


def test_markdown_has_verdict_timeline_and_top_suspect() -> None:
    report, _ = _scenario_report()
    text = report.markdown(links={"telemetry_snapshot": "http://dagster/assets/telemetry_snapshot"})
    f1_good = report.window.last_good.metrics["f1"] if report.window.last_good else 0.0
    assert f"v3's f1 went from {f1_good:.2f} (2026-01-09) to" in text
    assert "## Timeline" in text and "## Suspects" in text
    assert "last good evaluation" in text and "first bad evaluation" in text
    # The report reads top down for the person on call: suspects, then the timeline behind them.
    assert text.index("## Suspects") < text.index("## Timeline")
    timeline = text.split("## Timeline")[1]
    # Chronological: the last good evaluation, then the cause, then the first bad evaluation.
    assert timeline.index("last good") < timeline.index("sampling") < timeline.index("first bad")
    suspects = text.split("## Suspects")[1].split("## Timeline")[0]
    first_row = next(line for line in suspects.splitlines() if line.startswith("| 1 |"))
    assert "[telemetry_snapshot](http://dagster/assets/telemetry_snapshot)" in first_row
    assert "checkout collector \\| sampling" in first_row  # pipes escaped, table intact
    top_one = report.markdown(top=1).split("## Suspects")[1].split("## Timeline")[0]
    assert len(top_one.strip().splitlines()) == 3


def test_to_dict_is_json_serializable() -> None:
    report, cause = _scenario_report()
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["model"] == "anomaly_detector"
    assert data["suspects"][0]["change"]["summary"] == cause.summary
    assert data["suspects"][0]["change"]["after"]["since"] == cause.after["since"].isoformat()
    assert data["window"]["first_bad"]["partition"] == "2026-01-10"
    assert len(data["performance"]) == DAYS


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda build: build.__name__)
def test_every_shared_scenario_ranks_its_cause_first(build: Callable[[], Scenario]) -> None:
    scenario = build()
    report = build_incident_report(
        "anomaly_detector", scenario.changes, scenario.performance, scenario.drift
    )
    assert report is not None
    assert report.suspects[0].change == scenario.cause, report.markdown()


def test_the_timeline_plot_is_a_deterministic_png(tmp_path: Path) -> None:
    scenario = SCENARIOS[0]()
    report = build_incident_report(
        "anomaly_detector", scenario.changes, scenario.performance, scenario.drift
    )
    assert report is not None
    first = plot_incident(report, scenario.drift, tmp_path / "a.png").read_bytes()
    second = plot_incident(report, scenario.drift, tmp_path / "b.png").read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n") and len(first) > 10_000
    assert first == second
    # The features plotted are the ones that drifted most where the model first failed.
    assert set(top_drifted_features(report, scenario.drift)) <= set(scenario.cause.features) | {
        point.feature for point in scenario.drift
    }
    assert top_drifted_features(report, scenario.drift)[0] in scenario.cause.features


def test_without_the_plots_extra_the_plot_fails_in_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = SCENARIOS[0]()
    report = build_incident_report(
        "anomaly_detector", scenario.changes, scenario.performance, scenario.drift
    )
    assert report is not None
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(PlotsUnavailable, match=re.escape("pip install 'aiops-assets[plots]'")):
        plot_incident(report, scenario.drift, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
