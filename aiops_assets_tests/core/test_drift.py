"""The drift engine against scipy and straightforward reference implementations, its error
bounds, mergeability, false-alarm calibration, and real NAB series."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from aiops_assets.core import drift
from aiops_assets.core.drift import (
    DEFAULT_POLICY_PATH,
    PSI_EPSILON,
    BaselineProfile,
    DriftPolicy,
    DriftResult,
    Mode,
    benjamini_hochberg,
    build_profile,
    calibrate,
    compute_statistics,
    evaluate_drift,
    load_policy,
    merge_profiles,
    persistence_met,
)
from aiops_assets.core.store import canonical_json_bytes

# A policy that is BH alone: no effect floor, no calibration, no persistence.
PURE_FDR = {
    "kinds": {kind: {"warn": 0.0, "error": 0.0} for kind in ("numeric", "categorical", "binary")},
    "calibration": {"enabled": False},
    "persistence": {"window": 1, "required": 1},
}


def _frame(**columns: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(columns)


def _stats_of(
    reference: np.ndarray, current: np.ndarray, **options: object
) -> drift.FeatureStatistics:
    profile = build_profile(_frame(x=reference), numeric=["x"], **options)  # type: ignore[arg-type]
    return compute_statistics(profile, _frame(x=current))["x"]


def _scipy_ks(reference: np.ndarray, current: np.ndarray) -> Any:
    # scipy warns (and answers NaN) when the effective sample size rounds to 0.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return stats.ks_2samp(reference, current, method="asymp")


def _expected_p(scipy_p: float) -> object:
    """scipy's asymptotic p-value; where it is NaN (one value per side) the engine reports 1."""
    return 1.0 if math.isnan(scipy_p) else pytest.approx(scipy_p, abs=1e-9)


# -- exact mode equals scipy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "kind"),
    [
        (1, 1, "normal"),
        (50, 70, "normal"),
        (1000, 333, "normal"),
        (400, 900, "ties"),
        (64, 64, "ties"),
    ],
)
def test_exact_ks_and_wasserstein_equal_scipy(n_ref: int, n_cur: int, kind: str) -> None:
    rng = np.random.default_rng(n_ref * 1000 + n_cur)
    if kind == "ties":
        reference = rng.integers(0, 6, n_ref).astype(float)
        current = rng.integers(1, 8, n_cur).astype(float)
    else:
        reference = rng.normal(size=n_ref)
        current = rng.normal(0.2, 1.3, size=n_cur)
    result = _stats_of(reference, current)
    expected = _scipy_ks(reference, current)
    assert result.mode == "exact"
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == _expected_p(expected.pvalue)
    wasserstein = stats.wasserstein_distance(reference, current)
    assert result.metrics["wasserstein"] == pytest.approx(wasserstein, rel=1e-9, abs=1e-300)
    assert result.metrics["ks_error_bound"] == 0.0


_values = st.one_of(
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=80),  # heavy ties
    st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
        min_size=1,
        max_size=80,
    ),
    st.builds(lambda v, n: [v] * n, st.floats(-5, 5, width=16), st.integers(1, 40)),  # constant
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=_values, current=_values)
def test_exact_mode_equals_scipy_for_any_sizes_ties_and_constants(
    reference: list[float], current: list[float]
) -> None:
    ref, cur = np.array(reference), np.array(current)
    result = _stats_of(ref, cur)
    expected = _scipy_ks(ref, cur)
    assert abs(result.statistic - expected.statistic) <= 1e-9
    assert result.p_value == _expected_p(expected.pvalue)
    wasserstein = stats.wasserstein_distance(ref, cur)
    assert abs(result.metrics["wasserstein"] - wasserstein) <= 1e-9 * max(wasserstein, 1e-12)
    for name, value in result.metrics.items():
        assert math.isfinite(value), name


def test_large_sample_ks_p_values_stay_close_to_scipy_at_a_fraction_of_its_cost() -> None:
    n = drift.KS_EXACT_P_MAX_N + 1
    statistic = np.sqrt(np.array([0.3, 1.0, 3.0, 10.0, 40.0]) / n)  # p from ~1 down to ~1e-35
    ours = drift.ks_p_values(statistic, np.full(5, 2.0 * n), np.full(5, 2.0 * n))
    expected = stats.kstwo.sf(statistic, n)
    assert np.max(np.abs(ours - expected)) <= 5e-4
    # Up to the limit it is scipy's own computation.
    below = drift.ks_p_values(statistic, np.full(5, 2.0 * (n - 1)), np.full(5, 2.0 * (n - 1)))
    assert np.array_equal(below, np.clip(stats.kstwo.sf(statistic, n - 1), 0, 1))


def test_missing_and_infinite_values_are_missing_not_data() -> None:
    reference = np.array([1.0, 2.0, np.nan, 3.0, np.inf, 4.0])
    current = np.array([-np.inf, 2.5, np.nan, 3.5, 1.5])
    result = _stats_of(reference, current)
    finite_ref, finite_cur = np.array([1.0, 2, 3, 4]), np.array([2.5, 3.5, 1.5])
    assert result.statistic == pytest.approx(stats.ks_2samp(finite_ref, finite_cur).statistic)
    assert result.reference_count == 4 and result.current_count == 3
    assert result.metrics["missing_rate_reference"] == pytest.approx(2 / 6)
    assert result.metrics["missing_rate_current"] == pytest.approx(2 / 5)


# -- PSI, Jensen-Shannon and chi-square against straightforward implementations --------------------


def _reference_psi_js(
    reference_counts: list[float], current_counts: list[float]
) -> tuple[float, float]:
    p = np.array(reference_counts) / sum(reference_counts)
    q = np.array(current_counts) / sum(current_counts)
    psi = 0.0
    for p_i, q_i in zip(p, q, strict=True):
        p_i, q_i = max(p_i, PSI_EPSILON), max(q_i, PSI_EPSILON)
        psi += (q_i - p_i) * math.log(q_i / p_i)
    return psi, float(jensenshannon(p, q, base=2))


def _quantile_bin_counts(reference: np.ndarray, values: np.ndarray, bins: int) -> list[float]:
    # Edges: for j = 1..bins-1 the smallest reference value v with #(ref <= v) / n >= j / bins, in
    # integer arithmetic (np.quantile's inverted_cdf computes n * j / bins in floating point and
    # can land one value off).
    ordered = sorted(reference)
    n = len(ordered)
    edges: list[float] = []
    for j in range(1, bins):
        edge = next(v for v in ordered if sum(x <= v for x in ordered) * bins >= j * n)
        if edge not in edges:
            edges.append(edge)
    counts = [0.0] * (len(edges) + 1)
    for value in values:  # bins are right-closed: (-inf, e1], (e1, e2], ..., (e_last, inf)
        counts[sum(value > edge for edge in edges)] += 1
    return counts


@pytest.mark.parametrize("bins", [4, 10, 20])
@pytest.mark.parametrize("ties", [False, True])
def test_numeric_psi_and_js_equal_a_direct_implementation(bins: int, ties: bool) -> None:
    rng = np.random.default_rng(bins)
    reference = rng.gamma(2.0, size=700)
    current = rng.gamma(2.4, size=500)
    if ties:
        reference, current = np.round(reference), np.round(current)
    profile = build_profile(_frame(x=reference), numeric=["x"], psi_bins=bins)
    result = compute_statistics(profile, _frame(x=current))["x"]
    psi, js = _reference_psi_js(
        _quantile_bin_counts(reference, reference, bins),
        _quantile_bin_counts(reference, current, bins),
    )
    assert result.metrics["psi"] == pytest.approx(psi, rel=1e-12, abs=1e-15)
    assert result.metrics["js"] == pytest.approx(js, rel=1e-9, abs=1e-12)


def test_categorical_chi2_psi_and_js_equal_direct_implementations() -> None:
    rng = np.random.default_rng(7)
    reference = rng.choice(["a", "b", "c", "d"], size=600, p=[0.4, 0.3, 0.2, 0.1])
    current = rng.choice(["a", "b", "c", "e"], size=400, p=[0.3, 0.3, 0.3, 0.1])
    profile = build_profile(_frame(c=reference), numeric=[], categorical=["c"])
    result = compute_statistics(profile, _frame(c=current))["c"]
    categories = ["a", "b", "c", "d", "e"]
    ref_counts = [float((reference == c).sum()) for c in categories]
    cur_counts = [float((current == c).sum()) for c in categories]
    chi2, p_value, _, _ = stats.chi2_contingency([ref_counts, cur_counts], correction=False)
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(chi2, rel=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-300)
    psi, js = _reference_psi_js(ref_counts, cur_counts)
    assert result.metrics["psi"] == pytest.approx(psi, rel=1e-12)
    assert result.metrics["js"] == pytest.approx(js, rel=1e-9)
    assert result.metrics["new_categories"] == 1.0


def test_label_drift_compares_positive_rates() -> None:
    reference = np.array([0] * 900 + [1] * 100)
    current = np.array([0] * 800 + [1] * 200)
    profile = build_profile(_frame(y=reference), numeric=[], labels=["y"])
    result = compute_statistics(profile, _frame(y=current))["y"]
    assert (result.kind, result.role) == ("binary", "label")
    assert result.metrics["rate_reference"] == pytest.approx(0.1)
    assert result.metrics["rate_current"] == pytest.approx(0.2)
    assert result.metrics["rate_difference"] == pytest.approx(0.1)
    chi2, p_value, _, _ = stats.chi2_contingency([[900, 100], [800, 200]], correction=False)
    assert result.statistic == pytest.approx(chi2) and result.p_value == pytest.approx(p_value)
    with pytest.raises(ValueError, match="0/1"):
        build_profile(_frame(y=np.array([0, 2])), numeric=[], labels=["y"])


def test_prediction_drift_is_the_numeric_path_on_a_score_column() -> None:
    rng = np.random.default_rng(3)
    reference = _frame(score=rng.beta(2, 5, 2000), cpu=rng.normal(size=2000))
    current = _frame(score=rng.beta(2.6, 5, 2000), cpu=rng.normal(size=2000))
    profile = build_profile(reference, numeric=["cpu"], predictions=["score"])
    result = evaluate_drift(profile, current)
    score = result.feature("score")
    assert (score.kind, score.role, score.test) == ("numeric", "prediction", "ks")
    expected = stats.ks_2samp(reference["score"], current["score"], method="asymp")
    assert score.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert "score" in result.drifted and "cpu" not in result.drifted


# -- sketch mode: documented error bounds ----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ref=st.integers(1, 3000),
    n_cur=st.integers(1, 3000),
    sketch_bins=st.sampled_from([10, 20, 50, 100]),
    ties=st.booleans(),
    shift=st.floats(-2, 2),
)
def test_sketch_mode_stays_within_its_documented_error_bounds(
    seed: int, n_ref: int, n_cur: int, sketch_bins: int, ties: bool, shift: float
) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=n_ref)
    current = rng.normal(shift, 1.5, size=n_cur)
    if ties:
        reference, current = np.round(reference * 2), np.round(current * 2)
    exact = _stats_of(reference, current)
    sketch = _stats_of(reference, current, mode="sketch", sketch_bins=sketch_bins)
    profile = build_profile(
        _frame(x=reference), numeric=["x"], mode="sketch", sketch_bins=sketch_bins
    )
    assert profile.features[0].sketch is not None
    # A fresh sketch interpolates over gaps that hold less than 1 / sketch_bins of the values.
    assert profile.features[0].sketch.rank_error <= 1 / sketch_bins + 1e-12
    ks_error = abs(sketch.statistic - exact.statistic)
    assert ks_error <= sketch.metrics["ks_error_bound"] + 1e-12
    w_error = abs(sketch.metrics["wasserstein"] - exact.metrics["wasserstein"])
    assert w_error <= sketch.metrics["wasserstein_error_bound"] + 1e-9
    # PSI and JS bins are knots of the sketch when sketch_bins is a multiple of psi_bins.
    if sketch_bins % profile.psi_bins == 0:
        assert sketch.metrics["psi"] == pytest.approx(exact.metrics["psi"], abs=1e-12)
        assert sketch.metrics["js"] == pytest.approx(exact.metrics["js"], abs=1e-12)


def test_default_sketch_keeps_ks_within_one_two_thousandth() -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.lognormal(size=200_000), rng.lognormal(0.05, size=50_000)
    exact = _stats_of(reference, current, mode="exact")
    sketch = _stats_of(reference, current, mode="auto")
    assert sketch.mode == "sketch"
    assert sketch.metrics["ks_error_bound"] <= 2 / drift.DEFAULT_SKETCH_BINS + 1e-3
    assert abs(sketch.statistic - exact.statistic) <= sketch.metrics["ks_error_bound"]


# -- mergeability ----------------------------------------------------------------------------------


def _without_moments(profile: BaselineProfile) -> dict[str, object]:
    data = profile.to_dict()
    for feature in data["features"]:
        feature.pop("mean", None)
        feature.pop("m2", None)
    return data


def _mixed_frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    values = rng.normal(size=rows)
    values[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": values,
            "k": rng.integers(0, 4, rows).astype(float),
            "c": rng.choice(["a", "b", "c"], rows),
            "y": rng.integers(0, 2, rows),
        }
    )


@pytest.mark.parametrize("mode", ["exact", "sketch"])
def test_profile_of_a_union_equals_the_merge_of_the_profiles(mode: str) -> None:
    rng = np.random.default_rng(5)
    part_a, part_b = _mixed_frame(rng, 3000), _mixed_frame(rng, 2000)
    options: dict[str, object] = {"numeric": ["x", "k"], "categorical": ["c"], "labels": ["y"]}
    if mode == "exact":
        whole = build_profile(pd.concat([part_a, part_b]), mode="exact", **options)  # type: ignore[arg-type]
        merged = merge_profiles(
            build_profile(part_a, mode="exact", **options),  # type: ignore[arg-type]
            build_profile(part_b, mode="exact", **options),  # type: ignore[arg-type]
        )
    else:
        # Sketches merge exactly on one grid: profile the parts like a reference profile.
        grid = build_profile(part_a, mode="sketch", sketch_bins=100, **options)  # type: ignore[arg-type]
        whole = build_profile(pd.concat([part_a, part_b]), like=grid)
        merged = merge_profiles(build_profile(part_a, like=grid), build_profile(part_b, like=grid))
    assert _without_moments(merged) == _without_moments(whole)
    for left, right in zip(merged.features, whole.features, strict=True):
        assert left.mean == pytest.approx(right.mean, rel=1e-12, abs=1e-12)
        assert left.m2 == pytest.approx(right.m2, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.tuples(st.integers(1, 2000), st.integers(1, 2000)))
def test_sketches_on_different_grids_merge_within_their_carried_bound(
    seed: int, sizes: tuple[int, int]
) -> None:
    rng = np.random.default_rng(seed)
    part_a = rng.normal(size=sizes[0])
    part_b = np.round(rng.normal(1.0, 2.0, size=sizes[1]), 1)
    profiles = [
        build_profile(_frame(x=part), numeric=["x"], mode="sketch", sketch_bins=40)
        for part in (part_a, part_b)
    ]
    merged = merge_profiles(*profiles).features[0]
    union = np.sort(np.concatenate([part_a, part_b]))
    points = np.unique(np.concatenate([union, union + 1e-9, union - 1e-9]))
    truth_at = np.searchsorted(union, points, "right") / union.size
    truth_below = np.searchsorted(union, points, "left") / union.size
    assert merged.sketch is not None and merged.count == union.size
    bound = merged.sketch.rank_error + 1e-12
    assert np.max(np.abs(merged.cdf(points) - truth_at)) <= bound
    assert np.max(np.abs(merged.cdf(points, left=True) - truth_below)) <= bound


def test_an_exact_profile_merges_exactly_into_a_sketch() -> None:
    rng = np.random.default_rng(8)
    big, small = rng.normal(size=5000), rng.normal(size=300)
    sketch = build_profile(_frame(x=big), numeric=["x"], mode="sketch", sketch_bins=50)
    merged = merge_profiles(sketch, build_profile(_frame(x=small), numeric=["x"], mode="exact"))
    expected = build_profile(_frame(x=np.concatenate([big, small])), like=sketch)
    assert _without_moments(merged)["features"] == _without_moments(expected)["features"]


# -- serialization ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "sketch"])
def test_profiles_round_trip_through_json_and_canonical_bytes(mode: Mode) -> None:
    rng = np.random.default_rng(9)
    frame = _mixed_frame(rng, 1500)
    profile = build_profile(
        frame, numeric=["x", "k"], categorical=["c"], labels=["y"], mode=mode, sketch_bins=100
    )
    profile = calibrate(profile, [frame.iloc[:500], frame.iloc[500:1000], frame.iloc[1000:]])
    as_json = canonical_json_bytes(profile.to_dict())  # what ArtifactStore.put_json writes
    again = BaselineProfile.from_dict(json.loads(as_json))
    assert canonical_json_bytes(again.to_dict()) == as_json
    data = profile.to_bytes()
    assert BaselineProfile.from_bytes(data).to_bytes() == data
    assert again.to_bytes() == data
    assert profile.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError, match="truncated"):
        BaselineProfile.from_bytes(data[:-8])


def test_a_result_round_trips_and_its_json_is_canonical() -> None:
    rng = np.random.default_rng(10)
    profile = build_profile(_mixed_frame(rng, 800), categorical=["c"], labels=["y"])
    result = evaluate_drift(profile, _mixed_frame(rng, 600))
    encoded = canonical_json_bytes(result.to_dict())
    assert DriftResult.from_dict(json.loads(encoded)).to_dict() == result.to_dict()


# -- policy ----------------------------------------------------------------------------------------


def test_the_policy_hash_is_the_sha256_of_the_yaml_file() -> None:
    policy = load_policy()
    assert policy.sha256 == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()
    changed = policy.replace({"alpha": 0.01})
    assert changed.alpha == 0.01 and changed.sha256 != policy.sha256
    assert DriftPolicy.from_yaml(changed.source).sha256 == changed.sha256
    result = evaluate_drift(build_profile(_frame(x=np.arange(10.0))), _frame(x=np.arange(10.0)))
    assert result.policy_sha256 == policy.sha256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"kinds": {"numeric": {"effect": "chi2"}}}, "measure"),
        ({"kinds": {"numeric": {"warn": 0.5, "error": 0.1}}}, "warn <= error"),
        ({"persistence": {"window": 2, "required": 3}}, "persistence"),
        ({"surprise": 1}, "unknown"),
    ],
)
def test_an_invalid_policy_is_refused_with_a_reason(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_policy().replace(change)


def test_benjamini_hochberg_matches_the_textbook_step_up() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.04])
    m = p.size
    order = np.argsort(p)
    expected = np.empty(m)
    for rank in range(m):  # q_(i) = min over j >= i of m p_(j) / j
        expected[order[rank]] = min(1.0, min(p[order[j]] * m / (j + 1) for j in range(rank, m)))
    assert np.allclose(benjamini_hochberg(p), expected, rtol=0, atol=1e-15)
    assert benjamini_hochberg([]).size == 0


def test_persistence_counts_drifted_partitions_in_the_window() -> None:
    assert persistence_met([], True, window=1, required=1)
    assert not persistence_met([], False, window=1, required=1)
    assert not persistence_met(["ok", "ok"], True, window=3, required=2)
    assert persistence_met(["warn", "ok"], True, window=3, required=2)
    assert persistence_met(["ok", "error"], True, window=3, required=2)
    # Only the last window - 1 previous partitions count.
    assert not persistence_met(["warn", "ok", "ok"], True, window=3, required=2)
    assert not persistence_met([None, "warn"], False, window=3, required=2)


def test_warn_escalates_to_error_when_drift_persists() -> None:
    rng = np.random.default_rng(12)
    profile = build_profile(_frame(x=rng.normal(size=20_000)))
    current = _frame(x=rng.normal(0.12, 1.0, size=20_000))  # a real but moderate shift
    escalating = load_policy().replace({"persistence": {"escalate_at": 0.0}})
    first = evaluate_drift(profile, current, escalating)
    assert first.verdict == "warn" and first.drifted == ("x",)
    second = evaluate_drift(profile, current, escalating, previous=[first.feature_verdicts()])
    assert second.verdict == "error" and second.feature("x").persistent
    calm = evaluate_drift(profile, current, escalating, previous=[{"x": "ok"}])
    assert calm.verdict == "warn"


def test_lasting_drift_escalates_only_from_the_policys_share_of_the_error_threshold() -> None:
    """Calibrated on real telemetry: a small shift that lasts stays a WARN (read, not paged)."""
    rng = np.random.default_rng(12)
    profile = build_profile(_frame(x=rng.normal(size=20_000)))
    small = _frame(x=rng.normal(0.12, 1.0, size=20_000))
    policy = load_policy().replace({"persistence": {"escalate_at": 0.5}})
    error = policy.kinds["numeric"].error
    previous = [{"x": "warn"}, {"x": "warn"}]
    lasting = evaluate_drift(profile, small, policy, previous=previous)
    assert lasting.verdict == "warn" and not lasting.feature("x").persistent
    assert lasting.feature("x").effect < 0.5 * error
    medium = _frame(x=rng.normal(0.6 * error, 1.0, size=20_000))  # between half and the whole
    judged = evaluate_drift(profile, medium, policy, previous=previous)
    assert 0.5 * error <= judged.feature("x").effect < error
    assert judged.verdict == "error" and judged.feature("x").persistent
    assert evaluate_drift(profile, medium, policy).verdict == "warn", "not without the history"
    # The packaged default: persistence never escalates below the error threshold.
    assert load_policy().persistence_escalate_at == 1.0
    assert evaluate_drift(profile, medium, previous=previous).verdict == "warn"


def test_policy_rejects_an_escalation_share_or_bridge_out_of_range() -> None:
    with pytest.raises(ValueError, match="escalate_at"):
        load_policy().replace({"persistence": {"escalate_at": 1.5}})
    with pytest.raises(ValueError, match="bridge"):
        load_policy().replace({"episodes": {"bridge": -1}})
    assert load_policy().episode_bridge == 1


def test_calibrated_thresholds_raise_the_floors_to_the_references_own_variation() -> None:
    rng = np.random.default_rng(13)
    # A restless reference: each day has its own level.
    days = [rng.normal(level, 1.0, size=500) for level in rng.normal(0, 0.5, size=8)]
    profile = calibrate(build_profile(_frame(x=np.concatenate(days))), [_frame(x=d) for d in days])
    stats_ = profile.features[0].calibration["wasserstein_normalized"]
    assert stats_.chunks == 8 and stats_.std > 0
    usual = _frame(x=rng.normal(0.4, 1.0, size=500))
    calibrated = evaluate_drift(profile, usual)
    plain = evaluate_drift(
        profile, usual, load_policy().replace({"calibration": {"enabled": False}})
    )
    assert calibrated.features[0].calibrated and calibrated.verdict == "ok"
    assert calibrated.features[0].warn_threshold > plain.features[0].warn_threshold
    assert plain.verdict != "ok"
    with pytest.raises(ValueError, match="at least 2"):
        calibrate(profile, [_frame(x=days[0])])


# -- constant columns ------------------------------------------------------------------------------


def test_identical_constant_data_never_alarms_and_a_moved_constant_does() -> None:
    flat = np.full(2000, 45.0)
    profile = calibrate(
        build_profile(_frame(x=flat)), [_frame(x=flat[:1000]), _frame(x=flat[1000:])]
    )
    same = evaluate_drift(profile, _frame(x=np.full(288, 45.0)))
    feature = same.features[0]
    assert same.verdict == "ok" and feature.p_value == 1.0 and feature.effect == 0.0
    assert all(math.isfinite(value) for value in feature.metrics.values())
    moved = evaluate_drift(profile, _frame(x=np.full(288, 46.0)))
    assert moved.verdict == "error"
    assert math.isfinite(moved.features[0].effect)


def test_an_empty_current_column_is_reported_not_alarmed() -> None:
    profile = build_profile(_frame(x=np.arange(100.0)))
    result = evaluate_drift(profile, _frame(x=np.full(10, np.nan)))
    assert result.verdict == "ok" and result.features[0].current_count == 0
    with pytest.raises(ValueError, match="lacks the profiled columns"):
        evaluate_drift(profile, _frame(z=np.arange(3.0)))


# -- calibration of the alarm rate -----------------------------------------------------------------


def _null_sample(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **{f"x{i}": rng.normal(size=rows) for i in range(4)},
            "skewed": rng.lognormal(size=rows),
            "tied": rng.integers(0, 5, rows).astype(float),
            "service": rng.choice(["api", "db", "cache"], rows, p=[0.5, 0.3, 0.2]),
            "label": (rng.random(rows) < 0.1).astype(int),
        }
    )


@pytest.mark.slow  # 200 seeded trials, two policies each
def test_family_wise_false_alarms_stay_within_the_fdr_level_on_no_shift_data() -> None:
    pure = load_policy().replace(PURE_FDR)
    default = load_policy()
    alarms_pure = alarms_default = 0
    seeds = 200
    for seed in range(seeds):
        rng = np.random.default_rng([2026, seed])
        profile = build_profile(_null_sample(rng, 300), categorical=["service"], labels=["label"])
        current = _null_sample(rng, 200)
        alarms_pure += evaluate_drift(profile, current, pure, workers=1).verdict != "ok"
        alarms_default += evaluate_drift(profile, current, default, workers=1).verdict != "ok"
    # Under no shift every discovery is false, so FDR = FWER: BH keeps it at alpha.
    assert alarms_pure / seeds <= pure.alpha
    assert alarms_default <= alarms_pure


def test_a_tenth_of_a_sigma_shift_at_100k_rows_is_detected() -> None:
    rng = np.random.default_rng(14)
    profile = build_profile(_frame(x=rng.normal(size=100_000)))
    result = evaluate_drift(profile, _frame(x=rng.normal(0.1, 1.0, size=100_000)))
    assert result.drifted == ("x",) and result.verdict != "ok"
    assert result.features[0].q_value < 1e-20


def test_a_hundredth_of_a_sigma_shift_at_10m_rows_is_significant_but_not_alarmed() -> None:
    # How long this takes is measured by benchmarks/bench_drift_scale.py, not asserted here.
    rng = np.random.default_rng(15)
    reference = build_profile(_frame(x=rng.normal(size=1_000_000)), mode="sketch")
    # Ten million current rows, profiled in chunks of one million on the reference's grid: the
    # chunk profiles merge exactly, and no more than one chunk is ever in memory.
    current = merge_profiles(
        *(
            build_profile(_frame(x=rng.normal(0.01, 1.0, size=1_000_000)), like=reference)
            for _ in range(10)
        )
    )
    assert current.features[0].count == 10_000_000
    result = evaluate_drift(reference, current)
    feature = result.features[0]
    assert feature.q_value < 1e-6  # the KS test alone would alarm...
    assert feature.effect < 0.02 and result.verdict == "ok"  # ...the effect floor does not
    assert feature.statistic > feature.metrics["ks_error_bound"]


# -- the report ------------------------------------------------------------------------------------


def test_the_markdown_summary_names_the_drifted_features() -> None:
    rng = np.random.default_rng(16)
    reference = _frame(
        cpu=rng.normal(size=3000), mem=rng.normal(size=3000), io=rng.normal(size=3000)
    )
    current = _frame(
        cpu=rng.normal(1.0, 1, 3000), mem=rng.normal(size=3000), io=rng.normal(size=3000)
    )
    result = evaluate_drift(build_profile(reference), current)
    text = result.to_markdown()
    assert result.drifted == ("cpu",) and result.verdict == "error"
    assert "`cpu`" in text and "`mem`" not in text and "ERROR" in text
    assert result.policy_sha256[:12] in text
    quiet = evaluate_drift(build_profile(reference), reference).to_markdown()
    assert "No feature drifted" in quiet


# -- real data: NAB --------------------------------------------------------------------------------


def _daily_drift(
    series: pd.DataFrame, baseline_days: int
) -> list[tuple[pd.Timestamp, DriftResult]]:
    """Baseline = the first days (calibrated on its own days); every later day is a partition."""
    start = series["timestamp"].iloc[0]
    cut = start + pd.Timedelta(days=baseline_days)
    baseline = series[series["timestamp"] < cut]
    rest = series[series["timestamp"] >= cut]
    days = [
        day for _, day in baseline.groupby(baseline["timestamp"].dt.floor("D")) if len(day) > 100
    ]
    profile = calibrate(build_profile(baseline, numeric=["value"]), [d[["value"]] for d in days])
    policy = load_policy()
    results: list[tuple[pd.Timestamp, DriftResult]] = []
    for day, partition in rest.groupby(rest["timestamp"].dt.floor("D")):
        previous = [result.feature_verdicts() for _, result in results]
        results.append((day, evaluate_drift(profile, partition, policy, previous=previous)))
    return results


def _read_nab(path: Path) -> pd.DataFrame:
    series = pd.read_csv(path, parse_dates=["timestamp"])
    # machine_temperature repeats the hour 2014-01-07 02:00-02:55 (12 rows); the first copy is the
    # one in time order, so exact-duplicate timestamps keep their first row.
    return series.drop_duplicates("timestamp", keep="first").sort_values("timestamp")


def test_nab_machine_temperature_collapse_is_flagged_by_its_labeled_window(nab_root: Path) -> None:
    root = nab_root
    series = _read_nab(root / "data" / "realKnownCause" / "machine_temperature_system_failure.csv")
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    window_start, window_end = (
        pd.Timestamp(bound)
        for bound in windows["realKnownCause/machine_temperature_system_failure.csv"][-1]
    )
    assert window_start == pd.Timestamp("2014-02-07 14:55")
    results = _daily_drift(series, baseline_days=14)
    errors = [day for day, result in results if result.verdict == "error"]
    assert errors, "the collapse was never flagged"
    # A daily verdict exists once its day is complete.
    alarm_at = errors[0] + pd.Timedelta(days=1)
    lead_time = window_end - alarm_at
    print(
        f"\nmachine_temperature: first ERROR for partition {errors[0].date()}, raised at {alarm_at};"
        f" window {window_start} .. {window_end}; {alarm_at - window_start} after it opened,"
        f" lead time {lead_time} before it closed; ERROR partitions: {[str(d.date()) for d in errors]}"
    )
    # The first ERROR after the baseline is this collapse (no earlier false ERROR), and it comes
    # before the labeled window closes.
    assert window_start - pd.Timedelta(days=3) <= alarm_at <= window_end
    assert lead_time > pd.Timedelta(0)


@pytest.mark.parametrize(
    "name",
    [
        "art_daily_no_noise",
        "art_daily_perfect_square_wave",
        "art_daily_small_noise",
        "art_flatline",
        "art_noisy",
    ],
)
def test_nab_series_without_anomalies_raise_no_error(name: str, nab_root: Path) -> None:
    series = _read_nab(nab_root / "data" / "artificialNoAnomaly" / f"{name}.csv")
    # These series are 14 days long: a week of baseline, a week of daily partitions.
    results = _daily_drift(series, baseline_days=7)
    assert len(results) == 7
    assert [day for day, result in results if result.verdict == "error"] == []
    for _, result in results:
        for value in result.features[0].metrics.values():
            assert math.isfinite(value)
